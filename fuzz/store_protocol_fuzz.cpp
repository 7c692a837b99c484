// Fuzz target "store_protocol": the store's request decoder (lib/store/store_protocol.hpp) fed
// as a server feeds it: bytes arrive in pieces, complete requests are taken off the front, and a
// partial one waits for more. The server's incremental parser (lib/store/request_parser.hpp) is
// fed the same pieces and must agree with decode_request on everything, each byte examined once.
//
// Input: byte 0 seeds the split; the rest is the byte stream from one client. The stream is fed in
// three ways: all at once, in pieces of random sizes (seeded by byte 0 and the stream), and one byte
// at a time (streams up to 2 KiB; longer ones get a second random split instead).
//
// Allowed: decode_request returns (a request and its size, or "need more"), or throws
// ds::store::ProtocolViolation. Properties:
//   - every split decodes the same requests, then ends the same way (the same violation message,
//     or the same number of bytes left waiting)
//   - measuring (out == nullptr) and decoding agree on a complete request's size, and on a violation
//   - a decoded request encodes back to exactly the bytes it was decoded from
//   - decoded keys and values respect the protocol's limits
//   - RequestParser, fed the same pieces, yields the same requests and ends the same way (the same
//     violation message, or a partial request of the same size), with bytes_examined equal to the
//     bytes it was fed
// Each decode reads from a heap copy of exactly the bytes received so far, so a read past them is
// an AddressSanitizer report, not a silent success.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_target.hpp"
#include "store/request_parser.hpp"
#include "store/store_protocol.hpp"

namespace ds::fuzz {
namespace {

using store::ProtocolViolation;
using store::Request;

// What feeding a stream produced: its requests, with the bytes each came from, then how it ended.
struct Decoded {
  std::vector<Request> requests;
  std::vector<std::string> request_bytes;
  std::optional<std::string> violation;
  size_t left_waiting = 0;
};

bool same_request(const Request& a, const Request& b) {
  return a.type == b.type && a.keys == b.keys && a.values == b.values && a.number == b.number && a.delta == b.delta;
}

void check_limits(const Request& r) {
  DS_FUZZ_REQUIRE(r.keys.size() <= store::k_max_key_count, "too many keys decoded");
  for (const std::string& key : r.keys) DS_FUZZ_REQUIRE(key.size() <= store::k_max_key_bytes, "a key over the limit decoded");
  for (const std::string& value : r.values)
    DS_FUZZ_REQUIRE(value.size() <= store::k_max_value_bytes, "a value over the limit decoded");
  if (r.type == store::QueryType::auth_response)
    DS_FUZZ_REQUIRE(r.values.size() == 1 && r.values[0].size() <= store::k_auth_proof_bytes, "an oversized proof decoded");
}

// Takes every complete request off the front of pending (as the server's Connection::process does).
// Returns false once a violation ended the stream.
bool take_requests(std::string& pending, Decoded& out) {
  // An exact-size heap copy: ASan flags any read past the received bytes.
  const size_t size = pending.size();
  std::unique_ptr<char[]> exact(new char[size == 0 ? 1 : size]);
  std::copy(pending.begin(), pending.end(), exact.get());
  size_t offset = 0;
  while (true) {
    const std::string_view rest(exact.get() + offset, size - offset);
    std::optional<size_t> measured;
    try {
      measured = store::decode_request(rest, nullptr);
    } catch (const ProtocolViolation& violation) {
      out.violation = violation.what();
      // Decoding must reach the same verdict as measuring.
      Request request;
      try {
        store::decode_request(rest, &request);
        DS_FUZZ_REQUIRE(false, "measuring found a violation that decoding did not");
      } catch (const ProtocolViolation& again) {
        DS_FUZZ_REQUIRE(out.violation == again.what(), "measuring and decoding report different violations");
      }
      return false;
    }
    // Like the server, decode only what measuring found complete: decoding a partial MULTI_GET
    // would allocate its (up to 128 Ki) keys on every arriving byte, which is slow, not wrong.
    if (!measured) break;
    Request request;
    const std::optional<size_t> decoded = store::decode_request(rest, &request);
    DS_FUZZ_REQUIRE(measured == decoded, "measuring and decoding disagree on the request's size");
    DS_FUZZ_REQUIRE(*decoded >= 1 && *decoded <= rest.size(), "a request size outside the received bytes");
    check_limits(request);
    const std::string_view bytes = rest.substr(0, *decoded);
    DS_FUZZ_REQUIRE(store::encode_request(request) == bytes, "a decoded request does not encode to its bytes");
    out.requests.push_back(std::move(request));
    out.request_bytes.emplace_back(bytes);
    offset += *decoded;
  }
  pending.erase(0, offset);
  return true;
}

// Feeds stream in pieces of the given sizes (the last piece takes what is left).
Decoded feed(std::string_view stream, const std::vector<size_t>& pieces) {
  Decoded out;
  std::string pending;
  size_t at = 0;
  for (size_t i = 0; at < stream.size(); ++i) {
    const size_t n = i < pieces.size() ? std::min(pieces[i], stream.size() - at) : stream.size() - at;
    pending.append(stream.data() + at, n);
    at += n;
    if (!take_requests(pending, out)) return out;
  }
  out.left_waiting = pending.size();
  return out;
}

// The same pieces through the server's incremental parser.
Decoded feed_parser(std::string_view stream, const std::vector<size_t>& pieces) {
  Decoded out;
  store::RequestParser parser;
  std::string current;  // the bytes of the request being parsed
  uint64_t fed = 0;
  size_t at = 0;
  try {
    for (size_t i = 0; at < stream.size(); ++i) {
      const size_t n = i < pieces.size() ? std::min(pieces[i], stream.size() - at) : stream.size() - at;
      // An exact-size heap copy of the piece: ASan flags a read past it.
      std::unique_ptr<char[]> exact(new char[n == 0 ? 1 : n]);
      std::copy(stream.begin() + static_cast<std::ptrdiff_t>(at), stream.begin() + static_cast<std::ptrdiff_t>(at + n), exact.get());
      std::string_view piece(exact.get(), n);
      at += n;
      while (!piece.empty()) {
        const size_t used = parser.feed(piece);
        fed += used;
        current.append(piece.data(), used);
        piece.remove_prefix(used);
        if (!parser.complete()) {
          DS_FUZZ_REQUIRE(piece.empty(), "the parser stopped before the end of a piece without completing a request");
          break;
        }
        out.requests.push_back(parser.request());
        out.request_bytes.push_back(current);
        current.clear();
        parser.next();
      }
    }
  } catch (const ProtocolViolation& violation) {
    out.violation = violation.what();
    return out;
  }
  DS_FUZZ_REQUIRE(parser.bytes_examined() == fed, "the parser examined " + std::to_string(parser.bytes_examined()) +
                                                      " bytes for " + std::to_string(fed) + " fed");
  DS_FUZZ_REQUIRE(parser.request_bytes() == current.size(), "the parser's partial request size is wrong");
  out.left_waiting = current.size();
  return out;
}

std::vector<size_t> random_pieces(size_t total, Random& random) {
  std::vector<size_t> pieces;
  for (size_t sum = 0; sum < total;) {
    // Mostly small pieces, sometimes large ones: both the byte-wise and the bulk paths.
    const size_t n = random.next() % 4 == 0 ? random.between_1_and(total) : random.between_1_and(16);
    pieces.push_back(n);
    sum += n;
  }
  return pieces;
}

void require_same(const Decoded& a, const Decoded& b, const char* how) {
  const std::string split = std::string(" (whole stream vs ") + how + ")";
  DS_FUZZ_REQUIRE(a.requests.size() == b.requests.size(), "different request counts" + split);
  for (size_t i = 0; i < a.requests.size(); ++i) {
    DS_FUZZ_REQUIRE(same_request(a.requests[i], b.requests[i]), "request " + std::to_string(i) + " differs" + split);
    DS_FUZZ_REQUIRE(a.request_bytes[i] == b.request_bytes[i], "request " + std::to_string(i) + " came from other bytes" + split);
  }
  DS_FUZZ_REQUIRE(a.violation == b.violation, "the stream ends differently" + split);
  DS_FUZZ_REQUIRE(a.left_waiting == b.left_waiting, "different bytes left waiting" + split);
}

}  // namespace

void store_protocol_one_input(std::string_view input) {
  if (input.empty()) return;
  const std::string_view stream = input.substr(1);
  const Decoded whole = feed(stream, {stream.size()});
  Random random(hash_of(input));
  const std::vector<size_t> pieces = random_pieces(stream.size(), random);
  require_same(whole, feed(stream, pieces), "random pieces");
  require_same(whole, feed_parser(stream, {stream.size()}), "RequestParser, whole stream");
  require_same(whole, feed_parser(stream, pieces), "RequestParser, random pieces");
  if (stream.size() <= 2048) {
    require_same(whole, feed(stream, std::vector<size_t>(stream.size(), 1)), "single bytes");
    require_same(whole, feed_parser(stream, std::vector<size_t>(stream.size(), 1)), "RequestParser, single bytes");
  } else {
    require_same(whole, feed(stream, random_pieces(stream.size(), random)), "other random pieces");
  }
}

}  // namespace ds::fuzz

DS_FUZZ_TARGET(store_protocol, ds::fuzz::store_protocol_one_input)
