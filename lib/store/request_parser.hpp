// An incremental decoder of store requests (the framing of store_protocol.hpp), for the server:
// bytes are fed as they arrive, in pieces of any size, and each byte is examined once. The parse
// position (which field, how much of it) is kept between feeds, so a request delivered in n reads
// costs O(its size), not O(n * its size) as re-decoding the buffer from the start on every read
// would (a 256 MiB MULTI_SET in 8 KiB reads walked ~10^9 key headers that way).
//
// Limits are checked as soon as a length or count arrives, before its payload: a key over
// k_max_key_bytes, a value over k_max_value_bytes, a count over k_max_key_count, a proof over
// k_auth_proof_bytes, or a request over max_request_bytes throws ProtocolViolation. Payload memory
// grows with the bytes actually received, never with a declared length, so a peer that announces
// 8 MiB and sends nothing costs nothing.
//
// Not thread-safe; one parser per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "store/store_protocol.hpp"

namespace ds::store {

class RequestParser {
 public:
  explicit RequestParser(std::size_t max_request_bytes = k_max_request_bytes) : m_max_request_bytes(max_request_bytes) {}

  // Decodes from the front of data until one request is complete or data ends; returns the
  // number of bytes used (all of data unless a request completed first). Once complete(), feed
  // uses nothing until next(). Throws ProtocolViolation as decode_request does; the parser is
  // unusable afterwards (the server closes the connection).
  std::size_t feed(std::string_view data);

  bool complete() const { return m_field == Field::done; }
  // The completed request; the caller may move from its strings. Valid until next().
  Request& request() { return m_request; }
  // Forgets the completed request and waits for the next one.
  void next();

  // Some bytes of a request that is not complete yet have arrived (a stalled peer sits here).
  bool in_request() const { return m_request_bytes > 0 && !complete(); }
  // Bytes of the current request received so far.
  std::size_t request_bytes() const { return m_request_bytes; }
  // How many requests have been started (completed ones and the current one); tells a new
  // partial request from an old one.
  uint64_t requests_started() const { return m_requests_started; }
  // Every byte this parser has looked at since construction. Each fed byte is examined exactly
  // once, so this equals the bytes consumed: the linearity the tests measure.
  uint64_t bytes_examined() const { return m_bytes_examined; }

 private:
  // What the next bytes are. A string field is its uint64 length (in m_scratch), then its payload.
  enum class Field { type, number, delta, count, key, value, proof, done };

  void begin(Field field);
  void field_finished();       // the current field is whole: store it, pick the next one
  void length_arrived();       // a string field's length is whole: check it against its limits
  uint64_t scratch_u64() const;

  std::size_t m_max_request_bytes;
  Request m_request;
  Field m_field = Field::type;
  bool m_in_payload = false;   // string fields: the length is read, the payload is arriving
  std::string* m_target = nullptr;  // where the payload goes
  uint64_t m_need = 1;         // bytes still missing from the current field part
  unsigned char m_scratch[8] = {};
  unsigned m_scratch_size = 0;
  uint64_t m_count = 0;        // CHECK/WAIT/MULTI_GET/MULTI_SET's key count
  std::size_t m_request_bytes = 0;
  uint64_t m_requests_started = 0;
  uint64_t m_bytes_examined = 0;
};

}  // namespace ds::store
