#include <catch2/catch.hpp>

#include "store/store_protocol.hpp"
#include "store_test_util.hpp"

using namespace ds::store;
using ds::test::from_hex;
using ds::test::to_hex;

TEST_CASE("the query-type bytes follow torch 2.11's enum order") {
  CHECK(static_cast<int>(QueryType::validate) == 0);
  CHECK(static_cast<int>(QueryType::set) == 1);
  CHECK(static_cast<int>(QueryType::compare_set) == 2);
  CHECK(static_cast<int>(QueryType::get) == 3);
  CHECK(static_cast<int>(QueryType::add) == 4);
  CHECK(static_cast<int>(QueryType::check) == 5);
  CHECK(static_cast<int>(QueryType::wait) == 6);
  CHECK(static_cast<int>(QueryType::get_num_keys) == 7);
  CHECK(static_cast<int>(QueryType::delete_key) == 8);
  CHECK(static_cast<int>(QueryType::append) == 9);
  CHECK(static_cast<int>(QueryType::multi_get) == 10);
  CHECK(static_cast<int>(QueryType::multi_set) == 11);
  CHECK(static_cast<int>(QueryType::cancel_wait) == 12);
  CHECK(static_cast<int>(QueryType::ping) == 13);
  CHECK(static_cast<int>(QueryType::queue_push) == 14);
  CHECK(static_cast<int>(QueryType::queue_pop) == 15);
  CHECK(static_cast<int>(QueryType::queue_len) == 16);
  CHECK(static_cast<int>(QueryType::list_keys) == 17);
  CHECK(k_validation_magic == 0x3C85F7CE);
  CHECK(query_type_name(7) == "GETNUMKEYS");
  CHECK(query_type_name(0x42) == "0x42");
}

TEST_CASE("requests encode to the bytes of the recorded torch trace") {
  Request validate{.type = QueryType::validate, .number = k_validation_magic};
  CHECK(to_hex(encode_request(validate)) == "00cef7853c");
  Request ping{.type = QueryType::ping, .number = 0x223};
  CHECK(to_hex(encode_request(ping)) == "0d23020000");
  Request add{.type = QueryType::add, .keys = {"init/"}, .delta = 1};
  CHECK(to_hex(encode_request(add)) == "040500000000000000696e69742f0100000000000000");
  Request wait{.type = QueryType::wait, .keys = {"/default_pg/0//cpu//0/0"}};
  CHECK(to_hex(encode_request(wait)) ==
        "06" "0100000000000000" "1700000000000000" + to_hex("/default_pg/0//cpu//0/0"));
}

TEST_CASE("every request decodes to what was encoded") {
  const Request requests[] = {
      {.type = QueryType::validate, .number = k_validation_magic},
      {.type = QueryType::set, .keys = {"k"}, .values = {std::string("v\0w", 3)}},
      {.type = QueryType::compare_set, .keys = {"k"}, .values = {"old", "new"}},
      {.type = QueryType::get, .keys = {"k"}},
      {.type = QueryType::add, .keys = {"n"}, .delta = -7},
      {.type = QueryType::check, .keys = {"a", "b"}},
      {.type = QueryType::wait, .keys = {}},
      {.type = QueryType::get_num_keys},
      {.type = QueryType::delete_key, .keys = {"k"}},
      {.type = QueryType::append, .keys = {"k"}, .values = {"tail"}},
      {.type = QueryType::multi_get, .keys = {"a", "b", "c"}},
      {.type = QueryType::multi_set, .keys = {"a", "b"}, .values = {"1", "2"}},
      {.type = QueryType::cancel_wait},
      {.type = QueryType::ping, .number = 77},
      {.type = QueryType::queue_push, .keys = {"q"}, .values = {"x"}},
      {.type = QueryType::queue_pop, .keys = {"q"}},
      {.type = QueryType::queue_len, .keys = {"q"}},
      {.type = QueryType::list_keys},
      {.type = QueryType::auth_challenge},
      {.type = QueryType::auth_response, .values = {std::string(32, 'p')}},
  };
  for (const auto& request : requests) {
    const std::string bytes = encode_request(request);
    Request decoded;
    INFO(query_type_name(static_cast<uint8_t>(request.type)));
    REQUIRE(decode_request(bytes, &decoded) == bytes.size());
    CHECK(decoded.type == request.type);
    CHECK(decoded.keys == request.keys);
    CHECK(decoded.values == request.values);
    CHECK(decoded.number == request.number);
    CHECK(decoded.delta == request.delta);
    // Every proper prefix is incomplete, never an error and never a different request.
    for (std::size_t n = 0; n < bytes.size(); ++n) CHECK_FALSE(decode_request(std::string_view(bytes).substr(0, n), nullptr));
    // Measuring alone gives the same size.
    CHECK(decode_request(bytes + "trailing", nullptr) == bytes.size());
  }
}

TEST_CASE("lengths over torch's limits are protocol violations as soon as the length arrives") {
  // A key of 8 KiB + 1: rejected from the length field alone, before the key bytes arrive.
  CHECK_THROWS_AS(decode_request("\x03" + ds::test::u64_le(k_max_key_bytes + 1), nullptr), ProtocolViolation);
  // Exactly 8 KiB is fine (and incomplete without its bytes).
  CHECK_FALSE(decode_request("\x03" + ds::test::u64_le(k_max_key_bytes), nullptr));
  // A value of 8 MiB + 1.
  CHECK_THROWS_AS(decode_request("\x01" + ds::test::framed("k") + ds::test::u64_le(k_max_value_bytes + 1), nullptr),
                  ProtocolViolation);
  // More than 128 Ki keys in one WAIT.
  CHECK_THROWS_AS(decode_request("\x06" + ds::test::u64_le(k_max_key_count + 1), nullptr), ProtocolViolation);
  // A length of 2^64 - 1 (would wrap a careless size check).
  CHECK_THROWS_AS(decode_request("\x03" + from_hex("ffffffffffffffff"), nullptr), ProtocolViolation);
  // An AUTH_RESPONSE proof longer than an HMAC.
  CHECK_THROWS_AS(decode_request("\xa1" + ds::test::u64_le(33), nullptr), ProtocolViolation);
}

TEST_CASE("an unknown command byte is a protocol violation naming it") {
  CHECK_THROWS_WITH(decode_request("\x12", nullptr), "unknown command byte 0x12");
  CHECK_THROWS_AS(decode_request("\xff", nullptr), ProtocolViolation);
}

TEST_CASE("integers are little-endian whatever the host") {
  WireWriter w;
  w.u32(0x01020304);
  w.u64(0x0102030405060708ull);
  w.i64(-2);
  CHECK(to_hex(w.data()) == "04030201" "0807060504030201" "feffffffffffffff");
  WireReader r(w.data());
  uint32_t a = 0;
  uint64_t b = 0;
  int64_t c = 0;
  REQUIRE(r.u32(a));
  REQUIRE(r.u64(b));
  REQUIRE(r.i64(c));
  CHECK(a == 0x01020304);
  CHECK(b == 0x0102030405060708ull);
  CHECK(c == -2);
  CHECK(r.remaining() == 0);
}

TEST_CASE("a request whose sizes add up to more than 256 MiB is a protocol violation") {
  // MULTI_SET of 40 values of 8 MiB (each within torch's limit): the cap trips at the value that
  // would take the request past 256 MiB, before its bytes arrive.
  const std::string value_bytes(k_max_value_bytes, 'v');
  std::string bytes = "\x0b" + ds::test::u64_le(40);
  bytes.reserve(k_max_request_bytes + 1024);
  for (int i = 0; i < 31; ++i) bytes += ds::test::framed("k" + std::to_string(i)) + ds::test::u64_le(k_max_value_bytes) + value_bytes;
  CHECK_FALSE(decode_request(bytes, nullptr));  // 31 values: 248 MiB so far, fine and incomplete
  bytes += ds::test::framed("k31") + ds::test::u64_le(k_max_value_bytes);
  CHECK_THROWS_WITH(decode_request(bytes, nullptr), "request of more than 268435456 bytes is over the limit");
}
