// OutputRouter: the read ends of every rank's stdout and stderr pipes for one attempt. It splits
// what arrives into lines and routes each line, whole, to the console ("[rank N] " prefix; stdout
// lines to our stdout, stderr lines to our stderr), to log files (raw lines), and to a short
// in-memory tail used by failure reports.
//
// Threading: not thread-safe; the supervisor's loop thread owns it and calls on_readable() when
// poll() says a pipe is readable. Console writes are queued (Console never blocks the loop).
#pragma once

#include <poll.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "launch/console.hpp"
#include "launch/job.hpp"
#include "launch/unique_fd.hpp"

namespace ds::launch {

// A console line is cut into pieces of this size when no newline comes (progress bars, binary
// output); memory per stream stays bounded.
inline constexpr std::size_t k_max_line_bytes = 64 * 1024;
// Lines of each rank kept for the failure report.
inline constexpr std::size_t k_tail_lines = 20;

class OutputRouter {
 public:
  // `log_dir`: the resolved --log_dir (run_job picks a temporary one when --redirects/--tee come
  // without it). `attempt_start`: names --enable_each_rank_log files (<YYYYmmddHHMMSS>_rank<N>.log).
  OutputRouter(Console& console, const OutputOptions& options, std::optional<std::string> log_dir,
               const std::string& run_id, int attempt, std::chrono::system_clock::time_point attempt_start);
  ~OutputRouter();
  OutputRouter(const OutputRouter&) = delete;
  OutputRouter& operator=(const OutputRouter&) = delete;

  // Creates the pipes of a rank and opens its log files (creating directories). Returns the write
  // ends for the child's stdout and stderr; the caller closes them once the child is forked.
  // Throws ds::IoError naming a log path that cannot be created, ds::ResourceError without fds.
  struct ChildEnds {
    UniqueFd out;
    UniqueFd err;
  };
  ChildEnds add_rank(int global_rank, int local_rank);

  // Appends a pollfd (POLLIN) for every pipe still open.
  void append_pollfds(std::vector<pollfd>& fds) const;
  // Reads what `fd` has (never blocks) and routes every complete line; at end of file routes the
  // partial last line (a newline is added) and closes the pipe.
  void on_readable(int fd);
  bool all_closed() const;
  // Inode numbers of the pipes still open (to find who else holds them).
  std::vector<unsigned long> open_pipe_inodes() const;
  // Closes every pipe still open, routing partial lines: for pipes held open by a descendant that
  // escaped the kill, after the drain deadline.
  void close_all();

  // The last k_tail_lines lines rank `global_rank` wrote (both streams, in the order read).
  std::vector<std::string> tail(int global_rank) const;
  // Log files written for rank `global_rank`.
  std::vector<std::string> log_paths(int global_rank) const;

 private:
  struct LogFile {
    std::string path;
    UniqueFd fd;
    bool failed = false;  // a write failed (disk full): reported once, then skipped
  };
  struct Stream {
    int global_rank = 0;
    ConsoleStream which = ConsoleStream::out;
    UniqueFd fd;
    std::string partial;              // bytes after the last newline
    bool to_console = true;
    std::shared_ptr<LogFile> file;    // may be shared by both streams of a rank
  };
  struct RankState {
    std::deque<std::string> tail;
    std::vector<std::string> paths;
  };

  // AtEndOfFile::yes: the partial last line is routed too (with a newline added).
  enum class AtEndOfFile { no, yes };
  std::shared_ptr<LogFile> open_log(const std::string& path);
  void route_lines(Stream& stream, const char* data, std::size_t size, AtEndOfFile at_eof);
  void close_stream(Stream& stream);

  Console& m_console;
  OutputOptions m_options;
  std::optional<std::string> m_log_dir;
  std::string m_run_id;
  int m_attempt;
  std::string m_stamp;  // YYYYmmddHHMMSS of the attempt's start
  std::vector<std::unique_ptr<Stream>> m_streams;
  std::map<int, Stream*> m_by_fd;
  std::map<int, RankState> m_ranks;
};

}  // namespace ds::launch
