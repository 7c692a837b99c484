#include "launch/output.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::launch {
namespace {

constexpr std::size_t k_read_bytes = 64 * 1024;
constexpr std::size_t k_tail_line_bytes = 500;  // a report shows at most this much of one line

StdStreams selected(const std::vector<StdStreams>& per_local_rank, int local_rank) {
  if (local_rank < 0 || static_cast<std::size_t>(local_rank) >= per_local_rank.size()) return StdStreams::none;
  return per_local_rank[static_cast<std::size_t>(local_rank)];
}

bool has(StdStreams set, StdStreams stream) {
  return (static_cast<unsigned>(set) & static_cast<unsigned>(stream)) != 0;
}

// Writes all of `text` to a regular file; false on error (errno set).
bool write_file(int fd, const std::string& text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    ssize_t n = ::write(fd, text.data() + pos, text.size() - pos);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    pos += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace

OutputRouter::OutputRouter(Console& console, const OutputOptions& options, std::optional<std::string> log_dir,
                           const std::string& run_id, int attempt, std::chrono::system_clock::time_point attempt_start)
    : m_console(console),
      m_options(options),
      m_log_dir(std::move(log_dir)),
      m_run_id(run_id.empty() ? "none" : run_id),
      m_attempt(attempt) {
  const std::time_t t = std::chrono::system_clock::to_time_t(attempt_start);
  std::tm local{};
  ::localtime_r(&t, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &local);
  m_stamp = stamp;
}

OutputRouter::~OutputRouter() = default;

std::shared_ptr<OutputRouter::LogFile> OutputRouter::open_log(const std::string& path) {
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec)
    throw IoError("cannot create the log directory " + parent.string() + ": " + ec.message() +
                  " (choose a writable directory for --log_dir / --enable_each_rank_log)");
  // Append: a restart within the same second reuses a --enable_each_rank_log name, and must not
  // erase the log of the attempt that failed.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!fd)
    throw IoError("cannot open the log file " + path + ": " + std::strerror(errno) +
                  " (choose a writable directory for --log_dir / --enable_each_rank_log)");
  auto file = std::make_shared<LogFile>();
  file->path = path;
  file->fd = std::move(fd);
  return file;
}

OutputRouter::ChildEnds OutputRouter::add_rank(int global_rank, int local_rank) {
  DS_CHECK(m_ranks.find(global_rank) == m_ranks.end(), "rank ", global_rank, " added twice");
  RankState& rank = m_ranks[global_rank];

  std::shared_ptr<LogFile> out_file, err_file;
  bool out_console = true, err_console = true;
  if (m_options.each_rank_log_dir) {
    // DeepSpeed's --enable_each_rank_log: both streams into one file, nothing on the console.
    auto file = open_log(*m_options.each_rank_log_dir + "/" + m_stamp + "_rank" + std::to_string(global_rank) + ".log");
    out_file = err_file = file;
    out_console = err_console = false;
    rank.paths.push_back(file->path);
  }
  const StdStreams redirect = selected(m_options.redirects, local_rank);
  const StdStreams tee = selected(m_options.tee, local_rank);
  if (m_log_dir) {
    // torchrun's layout; --tee implies the file, and keeps the console.
    const std::string dir = *m_log_dir + "/" + m_run_id + "/attempt_" + std::to_string(m_attempt) + "/" +
                            std::to_string(local_rank);
    auto wants_file = [&](StdStreams s) { return has(redirect, s) || has(tee, s); };
    if (wants_file(StdStreams::out) && !out_file) {
      out_file = open_log(dir + "/stdout.log");
      rank.paths.push_back(out_file->path);
    }
    if (wants_file(StdStreams::err) && !err_file) {
      err_file = open_log(dir + "/stderr.log");
      rank.paths.push_back(err_file->path);
    }
    if (has(redirect, StdStreams::out) && !has(tee, StdStreams::out)) out_console = false;
    if (has(redirect, StdStreams::err) && !has(tee, StdStreams::err)) err_console = false;
  }

  Pipe out = make_pipe("a rank's stdout");
  Pipe err = make_pipe("a rank's stderr");
  for (Pipe* pipe : {&out, &err}) ::fcntl(pipe->read.get(), F_SETFL, O_NONBLOCK);

  auto add_stream = [&](ConsoleStream which, UniqueFd fd, bool to_console, std::shared_ptr<LogFile> file) {
    auto stream = std::make_unique<Stream>();
    stream->global_rank = global_rank;
    stream->which = which;
    stream->fd = std::move(fd);
    stream->to_console = to_console;
    stream->file = std::move(file);
    m_by_fd[stream->fd.get()] = stream.get();
    m_streams.push_back(std::move(stream));
  };
  add_stream(ConsoleStream::out, std::move(out.read), out_console, out_file);
  add_stream(ConsoleStream::err, std::move(err.read), err_console, err_file);
  return ChildEnds{std::move(out.write), std::move(err.write)};
}

void OutputRouter::append_pollfds(std::vector<pollfd>& fds) const {
  for (const auto& [fd, stream] : m_by_fd) fds.push_back(pollfd{fd, POLLIN, 0});
}

bool OutputRouter::all_closed() const { return m_by_fd.empty(); }

std::vector<unsigned long> OutputRouter::open_pipe_inodes() const {
  std::vector<unsigned long> out;
  for (const auto& [fd, stream] : m_by_fd) {
    struct stat info;
    if (::fstat(fd, &info) == 0) out.push_back(static_cast<unsigned long>(info.st_ino));
  }
  return out;
}

void OutputRouter::on_readable(int fd) {
  auto it = m_by_fd.find(fd);
  if (it == m_by_fd.end()) return;
  Stream& stream = *it->second;
  char buffer[k_read_bytes];
  ssize_t n = ::read(fd, buffer, sizeof buffer);
  if (n > 0) {
    route_lines(stream, buffer, static_cast<std::size_t>(n), AtEndOfFile::no);
  } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
    route_lines(stream, nullptr, 0, AtEndOfFile::yes);
    close_stream(stream);
  }
}

void OutputRouter::close_all() {
  std::vector<Stream*> open;
  for (const auto& [fd, stream] : m_by_fd) open.push_back(stream);
  for (Stream* stream : open) {
    // Whatever is still buffered in the pipe, then the partial line.
    while (true) {
      char buffer[k_read_bytes];
      ssize_t n = ::read(stream->fd.get(), buffer, sizeof buffer);
      if (n <= 0) break;
      route_lines(*stream, buffer, static_cast<std::size_t>(n), AtEndOfFile::no);
    }
    route_lines(*stream, nullptr, 0, AtEndOfFile::yes);
    close_stream(*stream);
  }
}

void OutputRouter::route_lines(Stream& stream, const char* data, std::size_t size, AtEndOfFile at_eof) {
  if (size > 0) stream.partial.append(data, size);
  const std::string prefix = m_options.prefix_lines ? "[rank " + std::to_string(stream.global_rank) + "] " : "";
  RankState& rank = m_ranks[stream.global_rank];
  std::string console_text, file_text;
  auto emit = [&](std::string_view line) {
    if (stream.to_console) {
      console_text += prefix;
      console_text += line;
      console_text += '\n';
    }
    if (stream.file) {
      file_text += line;
      file_text += '\n';
    }
    rank.tail.emplace_back(line.substr(0, k_tail_line_bytes));
    if (line.size() > k_tail_line_bytes) rank.tail.back() += " [...]";
    if (rank.tail.size() > k_tail_lines) rank.tail.pop_front();
  };
  const std::string& text = stream.partial;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t newline = text.find('\n', start);
    if (newline == std::string::npos) {
      if (text.size() - start >= k_max_line_bytes) {
        emit(std::string_view(text).substr(start, k_max_line_bytes));
        start += k_max_line_bytes;
        continue;
      }
      if (at_eof == AtEndOfFile::yes) {
        emit(std::string_view(text).substr(start));
        start = text.size();
      }
      break;
    }
    emit(std::string_view(text).substr(start, newline - start));
    start = newline + 1;
  }
  stream.partial.erase(0, start);

  if (!console_text.empty()) m_console.write(stream.which, std::move(console_text));
  if (!file_text.empty() && stream.file && !stream.file->failed && !write_file(stream.file->fd.get(), file_text)) {
    stream.file->failed = true;
    m_console.write(ConsoleStream::err, "dslaunch: warning: cannot write " + stream.file->path + ": " +
                                            std::strerror(errno) + "; rank " + std::to_string(stream.global_rank) +
                                            "'s further output to it is lost\n");
  }
}

void OutputRouter::close_stream(Stream& stream) {
  m_by_fd.erase(stream.fd.get());
  stream.fd.reset();
}

std::vector<std::string> OutputRouter::tail(int global_rank) const {
  auto it = m_ranks.find(global_rank);
  if (it == m_ranks.end()) return {};
  return {it->second.tail.begin(), it->second.tail.end()};
}

std::vector<std::string> OutputRouter::log_paths(int global_rank) const {
  auto it = m_ranks.find(global_rank);
  if (it == m_ranks.end()) return {};
  return it->second.paths;
}

}  // namespace ds::launch
