#include "launch/unique_fd.hpp"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/error.hpp"

namespace ds::launch {

Pipe make_pipe(const char* what) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw ResourceError(std::string("cannot create a pipe for ") + what + ": " + std::strerror(errno) +
                        " (raise the open-file limit, `ulimit -n`, or start fewer ranks per node)");
  }
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

}  // namespace ds::launch
