#include "base/check.hpp"

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace ds::detail {

void check_failed(const char* file, int line, const char* condition, const std::string& message) {
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  const char* rank = std::getenv("RANK");
  std::fprintf(stderr, "internal error: %s:%d: check failed: %s%s%s (host %s, rank %s, pid %d)\n", file, line,
               condition, message.empty() ? "" : ": ", message.c_str(), host, rank ? rank : "-", getpid());
  std::fflush(stderr);
  std::abort();
}

}  // namespace ds::detail
