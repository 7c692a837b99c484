#include "launch/console.hpp"

#include <limits.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/error.hpp"

namespace ds::launch {

Console::Console(ConsoleFds fds, std::size_t max_queued_bytes)
    : m_fds(fds), m_max_queued_bytes(max_queued_bytes), m_wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!m_wake) throw ResourceError(std::string("cannot create an eventfd for the console: ") + std::strerror(errno));
  m_thread = std::thread([this] { run(); });
}

Console::~Console() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_have_work.notify_all();
  m_thread.join();
}

void Console::write(ConsoleStream stream, std::string lines) {
  if (lines.empty()) return;
  {
    std::lock_guard lock(m_mutex);
    m_queued_bytes += lines.size();
    m_queue.push_back({stream, std::move(lines)});
    ++m_enqueued;
  }
  m_have_work.notify_one();
}

bool Console::has_room() const {
  std::lock_guard lock(m_mutex);
  return m_queued_bytes < m_max_queued_bytes;
}

void Console::clear_wake() {
  std::uint64_t value;
  ssize_t ignored = ::read(m_wake.get(), &value, sizeof value);
  (void)ignored;
}

void Console::flush() {
  std::unique_lock lock(m_mutex);
  const std::uint64_t target = m_enqueued;
  m_written.wait(lock, [&] { return m_done >= target; });
}

void Console::run() {
  std::unique_lock lock(m_mutex);
  while (true) {
    m_have_work.wait(lock, [&] { return !m_queue.empty() || m_stopping; });
    if (m_queue.empty()) return;  // stopping and drained
    std::deque<Entry> batch;
    batch.swap(m_queue);
    lock.unlock();

    std::size_t bytes = 0;
    // Consecutive entries for the same stream go out together (fewer syscalls under heavy output).
    for (std::size_t i = 0; i < batch.size();) {
      std::string text = std::move(batch[i].text);
      const ConsoleStream stream = batch[i].stream;
      std::size_t j = i + 1;
      for (; j < batch.size() && batch[j].stream == stream; ++j) text += batch[j].text;
      bytes += text.size();
      write_all(stream, text);
      i = j;
    }

    lock.lock();
    const bool was_full = m_queued_bytes >= m_max_queued_bytes;
    m_queued_bytes -= bytes;
    m_done += batch.size();
    if (was_full && m_queued_bytes < m_max_queued_bytes) {
      const std::uint64_t one = 1;
      ssize_t ignored = ::write(m_wake.get(), &one, sizeof one);
      (void)ignored;
    }
    m_written.notify_all();
  }
}

void Console::write_all(ConsoleStream stream, const std::string& text) {
  const int index = stream == ConsoleStream::out ? 0 : 1;
  const int fd = stream == ConsoleStream::out ? m_fds.out : m_fds.err;
  std::size_t pos = 0;
  while (pos < text.size() && !m_broken[index]) {
    // The longest run of whole lines that fits PIPE_BUF, or one (long) line.
    std::size_t end = pos;
    while (true) {
      std::size_t nl = text.find('\n', end);
      std::size_t next = nl == std::string::npos ? text.size() : nl + 1;
      if (end != pos && next - pos > PIPE_BUF) break;
      end = next;
      if (end >= text.size() || end - pos >= PIPE_BUF) break;
    }
    std::size_t chunk_pos = pos;
    while (chunk_pos < end) {
      ssize_t n = ::write(fd, text.data() + chunk_pos, end - chunk_pos);
      if (n > 0) {
        chunk_pos += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};  // someone made our console non-blocking: wait for room
        ::poll(&p, 1, 1000);
      } else {
        m_broken[index] = true;  // EPIPE (reader gone), EIO, EBADF: nowhere left to write
        break;
      }
    }
    pos = end;
  }
}

}  // namespace ds::launch
