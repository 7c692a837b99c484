// The caps that keep one hostile or buggy client from hurting the job (docs/store.md "Caps").
// Each refusal is an error to that client alone: the server logs one line naming the client's
// address and the cap, closes that connection (torch's protocol has no error reply), and goes on
// serving everyone else.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "store/store_protocol.hpp"

namespace ds::store {

// Which cap refused a client (StoreServer::refusals counts them by this).
enum class StoreCap {
  reply_bytes,      // one reply (MULTI_GET, LIST_KEYS, GET ...) would be larger than max_reply_bytes
  stored_bytes,     // a write would take the table past max_stored_bytes
  connections,      // a connection arrived while max_connections were open
  request_bytes,    // one request over max_request_bytes
  request_timeout,  // a partial request, an unfinished handshake or an unread reply outlived request_timeout
};
inline constexpr int k_store_cap_count = 5;
const char* to_string(StoreCap cap);  // "max_reply_bytes", ...: the option's name

// A client's request would pass a cap. what() says by how much; the server adds who and closes.
// A ProtocolViolation, so code that only knows that type still closes the connection.
class CapExceeded : public ProtocolViolation {
 public:
  CapExceeded(StoreCap cap, const std::string& what) : ProtocolViolation(what), m_cap(cap) {}
  StoreCap cap() const { return m_cap; }

 private:
  StoreCap m_cap;
};

struct StoreLimits {
  // The bytes of one reply, computed before the reply is built. Must hold the largest value a
  // client reads (8 MiB, k_max_value_bytes, unless values grow by APPEND). Also bounds the replies
  // queued for a client that does not read them: the server stops reading from it until they drain.
  std::size_t max_reply_bytes = 64u << 20;
  // Keys, values and queued elements stored, all together (the launcher's own in-process writes
  // are not refused, only counted).
  std::size_t max_stored_bytes = 1u << 30;
  // Open client connections; one more is accepted and closed at once.
  std::size_t max_connections = 8192;
  // One request (torch has no cap; a MULTI_SET is the only request that can approach this).
  std::size_t max_request_bytes = k_max_request_bytes;
  // How long a request may take to arrive from its first byte, a new connection may take to
  // VALIDATE (and, under require_auth, to prove the token), and queued replies may wait for a
  // client that stopped reading. The connection is dropped after it; other clients never wait.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
};

// How the launcher's store treats unauthenticated clients.
enum class StoreAuthPolicy {
  auto_detect,  // require_auth iff every worker is native (the launcher decides)
  required,     // require_auth: an unauthenticated client can only VALIDATE, PING and authenticate
  protected_keys_only,  // torch clients work; only the protected namespaces need the token
};

// The launcher's store settings from its environment (docs/store.md lists them):
//   DSLAUNCH_STORE_MAX_REPLY_BYTES, DSLAUNCH_STORE_MAX_STORED_BYTES, DSLAUNCH_STORE_MAX_CONNECTIONS,
//   DSLAUNCH_STORE_MAX_REQUEST_BYTES   positive integers; bytes may end in K, M or G (powers of 1024)
//   DSLAUNCH_STORE_REQUEST_TIMEOUT     seconds, a positive number ("30", "0.5")
//   DSLAUNCH_STORE_REQUIRE_AUTH        1 (required), 0 (protected keys only), auto (default)
// Unset variables keep the defaults. Throws UsageError naming the variable, its value and what is
// accepted.
struct StoreSettings {
  StoreLimits limits{};
  StoreAuthPolicy auth = StoreAuthPolicy::auto_detect;
};
StoreSettings store_settings_from_env(const std::map<std::string, std::string>& env);

}  // namespace ds::store
