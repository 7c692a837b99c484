// UniqueFd: sole owner of one file descriptor; closes it on destruction (STYLE.md: RAII for every
// handle). Move-only. Used by the supervisor for pipes, log files and the self-pipe.
#pragma once

#include <unistd.h>

#include <utility>

namespace ds::launch {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : m_fd(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) reset(std::exchange(other.m_fd, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return m_fd; }
  bool valid() const { return m_fd >= 0; }
  explicit operator bool() const { return valid(); }
  // Gives up ownership without closing.
  int release() { return std::exchange(m_fd, -1); }
  // Closes the current descriptor (if any) and owns `fd` instead.
  void reset(int fd = -1) {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = fd;
  }

 private:
  int m_fd = -1;
};

// A pipe whose both ends are close-on-exec (the child gets its end through dup2, which clears the
// flag on the copy). Throws ds::ResourceError (naming `what`) when the process is out of descriptors.
struct Pipe {
  UniqueFd read;
  UniqueFd write;
};
Pipe make_pipe(const char* what);

}  // namespace ds::launch
