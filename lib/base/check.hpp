// Always-on checks for internal invariants (never compiled out, unlike assert). A failing check is
// a bug in dslaunch, not a user mistake: it prints file:line, the condition and a message, then
// aborts so a core dump or debugger shows the stack. User mistakes throw ds::Error (error.hpp).
#pragma once

#include <sstream>
#include <string>

namespace ds::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* condition, const std::string& message);

// Builds the optional message of DS_CHECK from stream-able parts.
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace ds::detail

// DS_CHECK(cond, parts...): abort with file:line unless cond holds. parts are streamed into the message.
#define DS_CHECK(cond, ...)                                                                      \
  do {                                                                                           \
    if (!(cond)) [[unlikely]]                                                                    \
      ::ds::detail::check_failed(__FILE__, __LINE__, #cond, ::ds::detail::concat("" __VA_OPT__(, ) __VA_ARGS__)); \
  } while (0)

// DS_UNREACHABLE(parts...): marks a path the code's own logic excludes.
#define DS_UNREACHABLE(...) \
  ::ds::detail::check_failed(__FILE__, __LINE__, "unreachable", ::ds::detail::concat("" __VA_OPT__(, ) __VA_ARGS__))
