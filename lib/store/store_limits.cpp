#include "store/store_limits.hpp"

#include <cmath>
#include <limits>

#include "base/error.hpp"

namespace ds::store {

const char* to_string(StoreCap cap) {
  switch (cap) {
    case StoreCap::reply_bytes: return "max_reply_bytes";
    case StoreCap::stored_bytes: return "max_stored_bytes";
    case StoreCap::connections: return "max_connections";
    case StoreCap::request_bytes: return "max_request_bytes";
    case StoreCap::request_timeout: return "request_timeout";
  }
  return "?";
}

namespace {

std::optional<std::string> lookup(const std::map<std::string, std::string>& env, const std::string& name) {
  auto it = env.find(name);
  if (it == env.end()) return std::nullopt;
  return it->second;
}

// "64M" -> 67108864. Digits, then at most one of K, M, G (powers of 1024); positive; fits size_t.
std::size_t parse_size(const std::string& name, const std::string& text, bool allow_suffix) {
  const std::string accepted = allow_suffix ? "a positive whole number of bytes, optionally ending in K, M or G (1024-based), e.g. 64M"
                                            : "a positive whole number";
  auto bad = [&] { return UsageError(name + "='" + text + "' is not " + accepted + "; fix or unset it"); };
  std::size_t i = 0;
  unsigned __int128 value = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    value = value * 10 + static_cast<unsigned>(text[i] - '0');
    if (value > std::numeric_limits<std::size_t>::max()) throw bad();
  }
  if (i == 0) throw bad();
  if (i < text.size()) {
    if (!allow_suffix || i + 1 != text.size()) throw bad();
    const char unit = text[i];
    const int shift = unit == 'K' || unit == 'k' ? 10 : unit == 'M' || unit == 'm' ? 20 : unit == 'G' || unit == 'g' ? 30 : -1;
    if (shift < 0) throw bad();
    value <<= shift;
    if (value > std::numeric_limits<std::size_t>::max()) throw bad();
  }
  if (value == 0) throw bad();
  return static_cast<std::size_t>(value);
}

}  // namespace

StoreSettings store_settings_from_env(const std::map<std::string, std::string>& env) {
  StoreSettings settings;
  StoreLimits& limits = settings.limits;
  if (auto v = lookup(env, "DSLAUNCH_STORE_MAX_REPLY_BYTES")) limits.max_reply_bytes = parse_size("DSLAUNCH_STORE_MAX_REPLY_BYTES", *v, true);
  if (auto v = lookup(env, "DSLAUNCH_STORE_MAX_STORED_BYTES")) limits.max_stored_bytes = parse_size("DSLAUNCH_STORE_MAX_STORED_BYTES", *v, true);
  if (auto v = lookup(env, "DSLAUNCH_STORE_MAX_CONNECTIONS")) limits.max_connections = parse_size("DSLAUNCH_STORE_MAX_CONNECTIONS", *v, false);
  if (auto v = lookup(env, "DSLAUNCH_STORE_MAX_REQUEST_BYTES")) {
    limits.max_request_bytes = parse_size("DSLAUNCH_STORE_MAX_REQUEST_BYTES", *v, true);
    if (limits.max_request_bytes > k_max_request_bytes)
      throw UsageError("DSLAUNCH_STORE_MAX_REQUEST_BYTES='" + *v + "' is over the protocol's limit of " +
                       std::to_string(k_max_request_bytes) + " bytes (256M); lower it or unset it");
  }
  if (auto v = lookup(env, "DSLAUNCH_STORE_REQUEST_TIMEOUT")) {
    std::size_t end = 0;
    double seconds = 0;
    try {
      seconds = std::stod(*v, &end);
    } catch (const std::exception&) {
      end = 0;
    }
    if (end == 0 || end != v->size() || !std::isfinite(seconds) || seconds <= 0 || seconds > 86400.0 * 365)
      throw UsageError("DSLAUNCH_STORE_REQUEST_TIMEOUT='" + *v +
                       "' is not a positive number of seconds (e.g. 30 or 0.5); fix or unset it");
    limits.request_timeout = std::max(std::chrono::milliseconds(1), std::chrono::milliseconds(std::llround(seconds * 1000)));
  }
  if (auto v = lookup(env, "DSLAUNCH_STORE_REQUIRE_AUTH")) {
    if (*v == "1")
      settings.auth = StoreAuthPolicy::required;
    else if (*v == "0")
      settings.auth = StoreAuthPolicy::protected_keys_only;
    else if (*v == "auto" || v->empty())
      settings.auth = StoreAuthPolicy::auto_detect;
    else
      throw UsageError("DSLAUNCH_STORE_REQUIRE_AUTH='" + *v +
                       "' is not 1, 0 or auto: 1 refuses every client without the job token, 0 lets torch clients "
                       "use the open keys, auto (the default) requires the token when every worker is dsworker");
  }
  return settings;
}

}  // namespace ds::store
