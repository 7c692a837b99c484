// Console: the supervisor's stdout and stderr, written by one thread of its own so that a slow
// terminal or a reader that stalls never delays failure detection, signals or the kill sequence.
//
// Line integrity: every write(2) holds whole lines only and at most PIPE_BUF bytes when the lines
// fit (writes of up to PIPE_BUF bytes to a pipe are atomic), so even other writers of the same
// descriptor (log lines of other threads) cannot split one of our lines; a single line longer than
// PIPE_BUF goes in one write of its own.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "launch/unique_fd.hpp"

namespace ds::launch {

enum class ConsoleStream { out, err };

// Where console lines go: dslaunch uses its own stdout and stderr; tests point them at files.
struct ConsoleFds {
  int out = 1;
  int err = 2;
};

class Console {
 public:
  // max_queued_bytes: above this, has_room() turns false (backpressure for the rank pipes; our own
  // messages are always accepted).
  explicit Console(ConsoleFds fds, std::size_t max_queued_bytes = std::size_t{16} << 20);
  // Writes out everything queued (this may block on a console that does not drain), then joins.
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  // Queues `lines` (whole lines, each ending in '\n'). Never blocks. Thread-safe.
  void write(ConsoleStream stream, std::string lines);
  // False while more than max_queued_bytes wait to be written.
  bool has_room() const;
  // Readable once the queue fell below the limit after has_room() was false. Call clear_wake() after.
  int wake_fd() const { return m_wake.get(); }
  void clear_wake();
  // Blocks until everything queued before the call has been written.
  void flush();
  const ConsoleFds& fds() const { return m_fds; }

 private:
  struct Entry {
    ConsoleStream stream;
    std::string text;
  };
  void run();
  void write_all(ConsoleStream stream, const std::string& text);

  ConsoleFds m_fds;
  std::size_t m_max_queued_bytes;
  UniqueFd m_wake;  // eventfd
  mutable std::mutex m_mutex;
  std::condition_variable m_have_work;
  std::condition_variable m_written;
  std::deque<Entry> m_queue;
  std::size_t m_queued_bytes = 0;
  std::uint64_t m_enqueued = 0;  // entries ever queued
  std::uint64_t m_done = 0;      // entries ever written (or dropped on a broken descriptor)
  bool m_stopping = false;
  bool m_broken[2] = {false, false};  // a descriptor failed (EPIPE, EIO): drop what is left for it
  std::thread m_thread;
};

}  // namespace ds::launch
