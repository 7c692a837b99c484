// The rendezvous store's wire protocol: PyTorch's TCPStore protocol as torch 2.11 speaks it
// (research/tcpstore-2.11.md), plus two command bytes of our own for the job-token handshake.
//
// Framing (all integers little-endian, whatever the host):
//   request  = 1 byte QueryType, then the arguments below
//   string   = uint64 length + that many bytes (keys and values alike; values are binary-safe)
//   count    = uint64 (number of keys in CHECK, WAIT, MULTI_GET, MULTI_SET)
//
//   VALIDATE     uint32 magic 0x3C85F7CE              no reply; must be a connection's first command
//   SET          key, value                           no reply
//   COMPARE_SET  key, expected, desired               string: the value now (see store_server.hpp)
//   GET          key                                  string ("" when the key is missing)
//   ADD          key, int64 delta                     int64: the new value (stored as decimal text)
//   CHECK        count, keys                          1 byte CheckResponse
//   WAIT         count, keys                          1 byte WaitResponse::stop_waiting, once all exist
//   GETNUMKEYS   -                                    int64
//   DELETE_KEY   key                                  int64: 1 if it existed, else 0
//   APPEND       key, bytes                           no reply
//   MULTI_GET    count, keys                          count strings
//   MULTI_SET    count, keys and values interleaved   no reply
//   CANCEL_WAIT  -                                    1 byte WaitResponse::wait_canceled
//   PING         uint32 nonce                         uint32: the same nonce
//   QUEUE_PUSH   key, value                           no reply
//   QUEUE_POP    key                                  int64 length before the pop, then the value if it was > 0
//   QUEUE_LEN    key                                  int64
//   LIST_KEYS    -                                    int64 n, then n strings
//
// Our addition (outside torch's enum, far above it so later torch commands cannot collide):
//   AUTH_CHALLENGE (0xA0)  -                     string: a fresh 32-byte random nonce
//                                                ("" when the server has no token: nothing to prove)
//   AUTH_RESPONSE  (0xA1)  string: HMAC-SHA256(token, nonce || k_auth_context)
//                                                1 byte AuthResponse; after `rejected` the server
//                                                closes the connection
// A torch client never sends these, so it stays unauthenticated (see store_server.hpp for what
// that allows).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "store/store_namespaces.hpp"  // is_protected_key: which keys need the token

namespace ds::store {

// Torch 2.11's c10d::detail::QueryType, in its order; the values are the wire bytes.
enum class QueryType : uint8_t {
  validate = 0,
  set = 1,
  compare_set = 2,
  get = 3,
  add = 4,
  check = 5,
  wait = 6,
  get_num_keys = 7,
  delete_key = 8,
  append = 9,
  multi_get = 10,
  multi_set = 11,
  cancel_wait = 12,
  ping = 13,
  queue_push = 14,
  queue_pop = 15,
  queue_len = 16,
  list_keys = 17,
  // dslaunch only:
  auth_challenge = 0xA0,
  auth_response = 0xA1,
};

enum class CheckResponse : uint8_t { ready = 0, not_ready = 1 };
enum class WaitResponse : uint8_t { stop_waiting = 0, wait_canceled = 1 };
enum class AuthResponse : uint8_t { accepted = 0, rejected = 1 };

inline constexpr uint32_t k_validation_magic = 0x3C85F7CE;
inline constexpr uint16_t k_default_store_port = 29500;

// Torch's libuv server limits; exceeding one is a protocol violation that closes the connection.
inline constexpr std::size_t k_max_key_bytes = 8 * 1024;
inline constexpr std::size_t k_max_value_bytes = 8 * 1024 * 1024;
inline constexpr std::size_t k_max_key_count = 128 * 1024;
// Our own cap on one request's size (torch has none): bounds what one peer can make us buffer.
// MULTI_SET is the only command that can approach it.
inline constexpr std::size_t k_max_request_bytes = 256 * 1024 * 1024;

inline constexpr std::size_t k_auth_nonce_bytes = 32;
inline constexpr std::size_t k_auth_proof_bytes = 32;
// Mixed into the HMAC so that a proof made for this handshake is useless anywhere else.
inline constexpr std::string_view k_auth_context = "dslaunch-store-auth-v1";


// "SET", "GETNUMKEYS", "AUTH_CHALLENGE", or "0x42" for a byte that is no command.
std::string query_type_name(uint8_t byte);

// A peer broke the protocol (unknown command, a length over a limit, a bad magic). The server
// closes that connection; the client turns it into a StoreError.
class ProtocolViolation : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Appends little-endian integers and length-prefixed strings to a byte string.
class WireWriter {
 public:
  void u8(uint8_t value) { m_bytes.push_back(static_cast<char>(value)); }
  void u32(uint32_t value);
  void u64(uint64_t value);
  void i64(int64_t value) { u64(static_cast<uint64_t>(value)); }
  void bytes(std::string_view value);  // uint64 length + bytes
  void query(QueryType type) { u8(static_cast<uint8_t>(type)); }

  const std::string& data() const { return m_bytes; }
  std::string take() { return std::move(m_bytes); }
  void clear() { m_bytes.clear(); }

 private:
  std::string m_bytes;
};

// Reads from a buffer that may hold only part of a message: each read returns false when the
// buffer ends first (nothing is consumed then; re-parse from the start when more bytes arrive).
// Length fields over the limits throw ProtocolViolation as soon as they are read, before any
// payload arrives.
class WireReader {
 public:
  explicit WireReader(std::string_view buffer) : m_buffer(buffer) {}

  bool u8(uint8_t& out);
  bool u32(uint32_t& out);
  bool u64(uint64_t& out);
  bool i64(int64_t& out);
  // A uint64-length-prefixed string of at most max_bytes; `what` names it in the violation.
  // out == nullptr skips the bytes without copying them.
  bool bytes(std::string* out, std::size_t max_bytes, std::string_view what);
  bool key(std::string* out) { return bytes(out, k_max_key_bytes, "key"); }
  bool value(std::string* out) { return bytes(out, k_max_value_bytes, "value"); }
  bool count(uint64_t& out);  // a key count, at most k_max_key_count

  std::size_t consumed() const { return m_offset; }
  std::size_t remaining() const { return m_buffer.size() - m_offset; }

 private:
  std::string_view m_buffer;
  std::size_t m_offset = 0;
};

// One decoded request. Which fields are used depends on type:
//   keys:   every key argument, in order (SET's key, WAIT's keys, MULTI_SET's keys ...)
//   values: every value argument (SET/APPEND/QUEUE_PUSH: 1; COMPARE_SET: expected, desired;
//           MULTI_SET: one per key; AUTH_RESPONSE: the proof)
//   number: VALIDATE's magic or PING's nonce;  delta: ADD's amount
struct Request {
  QueryType type = QueryType::validate;
  std::vector<std::string> keys{};
  std::vector<std::string> values{};
  uint32_t number = 0;
  int64_t delta = 0;
};

// Decodes one request from the front of buffer. Returns the number of bytes it used, or nullopt
// when the buffer holds only part of it. out == nullptr only measures (no copies), so a server can
// wait for a large request cheaply. Throws ProtocolViolation for an unknown command byte, a limit
// exceeded, or a request over k_max_request_bytes.
std::optional<std::size_t> decode_request(std::string_view buffer, Request* out);

// The bytes a client sends for request (the inverse of decode_request).
std::string encode_request(const Request& request);

}  // namespace ds::store
