// The server's incremental request parser (store/request_parser.hpp): same requests as
// decode_request whatever the pieces, each byte examined once, limits at the length.
#include <catch2/catch.hpp>

#include "store/request_parser.hpp"
#include "store/store_limits.hpp"
#include "store/store_protocol.hpp"
#include "store_test_util.hpp"

using namespace ds::store;
using ds::test::framed;
using ds::test::u64_le;

namespace {

std::vector<Request> every_kind_of_request() {
  std::vector<Request> out;
  auto add = [&](QueryType type, std::vector<std::string> keys, std::vector<std::string> values, uint32_t number = 0,
                 int64_t delta = 0) { out.push_back({type, std::move(keys), std::move(values), number, delta}); };
  add(QueryType::validate, {}, {}, k_validation_magic);
  add(QueryType::set, {"k"}, {std::string("v\0v", 3)});
  add(QueryType::set, {""}, {""});
  add(QueryType::compare_set, {"k"}, {"old", "new"});
  add(QueryType::get, {"dsworker/r/attempt_0/dp/gloo/1"}, {});
  add(QueryType::add, {"n"}, {}, 0, -7);
  add(QueryType::check, {"a", "b"}, {});
  add(QueryType::wait, {"a"}, {});
  add(QueryType::wait, {}, {});
  add(QueryType::get_num_keys, {}, {});
  add(QueryType::delete_key, {"a"}, {});
  add(QueryType::append, {"a"}, {"more"});
  add(QueryType::multi_get, {"a", "b", "c"}, {});
  add(QueryType::multi_set, {"a", "b"}, {"1", ""});
  add(QueryType::cancel_wait, {}, {});
  add(QueryType::ping, {}, {}, 0xdeadbeef);
  add(QueryType::queue_push, {"q"}, {"x"});
  add(QueryType::queue_pop, {"q"}, {});
  add(QueryType::queue_len, {"q"}, {});
  add(QueryType::list_keys, {}, {});
  add(QueryType::auth_challenge, {}, {});
  add(QueryType::auth_response, {}, {std::string(32, '\x11')});
  return out;
}

void check_same(const Request& a, const Request& b) {
  CHECK(static_cast<int>(a.type) == static_cast<int>(b.type));
  CHECK(a.keys == b.keys);
  CHECK(a.values == b.values);
  CHECK(a.number == b.number);
  CHECK(a.delta == b.delta);
}

}  // namespace

TEST_CASE("fed one byte at a time, the parser completes every request exactly at its last byte") {
  RequestParser parser;
  for (const Request& expected : every_kind_of_request()) {
    const std::string bytes = encode_request(expected);
    INFO("request " << query_type_name(static_cast<uint8_t>(expected.type)) << ", " << bytes.size() << " bytes");
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      REQUIRE_FALSE(parser.complete());
      REQUIRE(parser.feed(std::string_view(bytes).substr(i, 1)) == 1);
      if (i + 1 < bytes.size()) CHECK(parser.in_request());
    }
    REQUIRE(parser.complete());
    CHECK(parser.request_bytes() == bytes.size());
    check_same(parser.request(), expected);
    parser.next();
    CHECK_FALSE(parser.in_request());
  }
}

TEST_CASE("the parser stops at the end of one request and takes the next from where it stopped") {
  const std::string first = encode_request({QueryType::set, {"a"}, {"1"}});
  const std::string second = encode_request({QueryType::multi_get, {"a", "b"}, {}});
  const std::string stream = first + second + second.substr(0, 5);
  RequestParser parser;
  std::size_t used = parser.feed(stream);
  CHECK(used == first.size());
  REQUIRE(parser.complete());
  CHECK(parser.feed(stream.substr(used)) == 0);  // a complete request waits for next()
  parser.next();
  used += parser.feed(stream.substr(used));
  REQUIRE(parser.complete());
  check_same(parser.request(), {QueryType::multi_get, {"a", "b"}, {}});
  parser.next();
  CHECK(parser.feed(stream.substr(used)) == 5);
  CHECK(parser.in_request());
  CHECK(parser.requests_started() == 3);
}

TEST_CASE("a 1 MiB request delivered in 1-byte reads is parsed with each byte examined once") {
  // 128 keys of 8 KiB values: 1 MiB and change, the shape that made the old server re-walk every
  // key header on every read (quadratic).
  Request big{QueryType::multi_set, {}, {}};
  for (int i = 0; i < 128; ++i) {
    big.keys.push_back("key" + std::to_string(i));
    big.values.push_back(std::string(8192, static_cast<char>('a' + i % 26)));
  }
  const std::string bytes = encode_request(big);
  REQUIRE(bytes.size() > (1u << 20));
  RequestParser parser;
  for (std::size_t i = 0; i < bytes.size(); ++i) REQUIRE(parser.feed(std::string_view(bytes).substr(i, 1)) == 1);
  REQUIRE(parser.complete());
  CHECK(parser.bytes_examined() == bytes.size());  // linear: not sum over reads of the bytes so far
  check_same(parser.request(), big);
  // And the same for 8 KiB reads: still once each.
  RequestParser chunked;
  for (std::size_t i = 0; i < bytes.size(); i += 8192) chunked.feed(std::string_view(bytes).substr(i, 8192));
  REQUIRE(chunked.complete());
  CHECK(chunked.bytes_examined() == bytes.size());
}

TEST_CASE("the parser refuses a length over its limit as soon as the length arrives") {
  SECTION("a key over 8 KiB") {
    RequestParser parser;
    CHECK_THROWS_WITH(parser.feed("\x03" + u64_le(k_max_key_bytes + 1)),
                      "key of 8193 bytes is over the limit of 8192 bytes");
  }
  SECTION("a value over 8 MiB") {
    RequestParser parser;
    CHECK_THROWS_WITH(parser.feed("\x01" + framed("k") + u64_le(k_max_value_bytes + 1)),
                      "value of 8388609 bytes is over the limit of 8388608 bytes");
  }
  SECTION("a key count over 128 Ki") {
    RequestParser parser;
    CHECK_THROWS_WITH(parser.feed("\x0a" + u64_le(k_max_key_count + 1)), "key count 131073 is over the limit of 131072");
  }
  SECTION("an unknown command byte") {
    RequestParser parser;
    CHECK_THROWS_WITH(parser.feed("\x42"), "unknown command byte 0x42");
  }
  SECTION("a request over max_request_bytes is a CapExceeded at request_bytes, before its payload") {
    RequestParser parser(4096);
    const std::string head = "\x01" + framed("k") + u64_le(5000);
    try {
      parser.feed(head);
      FAIL("no refusal");
    } catch (const CapExceeded& refusal) {
      CHECK(refusal.cap() == StoreCap::request_bytes);
      CHECK(std::string(refusal.what()) == "request of more than 4096 bytes is over the limit");
    }
  }
}

TEST_CASE("a declared length costs no memory until its bytes arrive") {
  RequestParser parser;
  parser.feed("\x01" + framed("k") + u64_le(k_max_value_bytes) + "abc");
  REQUIRE(parser.in_request());
  REQUIRE(parser.request().values.size() == 1);
  CHECK(parser.request().values[0] == "abc");
  CHECK(parser.request().values[0].capacity() < 4096);
}
