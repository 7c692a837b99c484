// The server against raw bytes: the recorded torch 2.11 trace (research/tcpstore-2.11.md) replayed
// byte for byte, and the replies of torch 2.11's own libuv server to every other command (recorded
// the same way, against torch 2.11.0's TCPStore, see torch_wire_diff.py for the live comparison).
#include <catch2/catch.hpp>

#include <algorithm>

#include "store/store_server.hpp"
#include "store_test_util.hpp"

using namespace ds::store;
using ds::test::framed;
using ds::test::from_hex;
using ds::test::RawClient;
using ds::test::to_hex;
using ds::test::u64_le;

namespace {

const std::string k_addr0 = "/default_pg/0//cpu//0/0";
const std::string k_addr1 = "/default_pg/0//cpu//0/1";
const std::string k_probe = "/default_pg/0//probe/key";

// Stand-ins for the two 170-byte gloo address blobs of the trace.
std::string gloo_blob(char fill) {
  std::string blob(170, fill);
  blob[0] = '\0';  // binary, not text
  return blob;
}

std::string set_bytes(const std::string& key, const std::string& value) { return "\x01" + framed(key) + framed(value); }
std::string get_bytes(const std::string& key) { return "\x03" + framed(key); }
std::string wait_bytes(const std::string& key) { return "\x06" + u64_le(1) + framed(key); }

}  // namespace

TEST_CASE("the recorded torch 2.11 worker traffic gets byte-identical replies") {
  StoreServer server({});
  RawClient a(server.port()), b(server.port());

  // VALIDATE (no reply) and PING with nonce = pid 0x223, sent together as torch does.
  a.send_hex("00 cef7853c 0d 23020000");
  CHECK(a.recv_hex(4) == "23020000");
  a.send_hex("04 0500000000000000 696e69742f 0100000000000000");  // ADD "init/" 1
  CHECK(a.recv_hex(8) == "0100000000000000");
  b.send_hex("00 cef7853c 0d 24020000");
  CHECK(b.recv_hex(4) == "24020000");
  b.send_hex("04 0500000000000000 696e69742f 0100000000000000");
  CHECK(b.recv_hex(8) == "0200000000000000");  // the second worker

  // SET rank 0's address: the exact bytes of the trace, and no reply. WAIT is the next request;
  // its STOP_WAITING (00) must be the very next byte the client sees.
  const std::string blob0 = gloo_blob('\x11'), blob1 = gloo_blob('\x22');
  const std::string set0 = set_bytes(k_addr0, blob0);
  CHECK(to_hex(set0).substr(0, 2 + 16 + 2 * 23 + 16) ==
        "01" "1700000000000000" + to_hex(k_addr0) + "aa00000000000000");
  a.send(set0);
  a.send(wait_bytes(k_addr0));
  CHECK(a.recv_hex(1) == "00");
  a.send(get_bytes(k_addr0));
  CHECK(a.recv(8 + 170) == from_hex("aa00000000000000") + blob0);

  // WAIT for the peer's address before it exists: no reply yet. A PING sent after it is answered
  // first, which proves the WAIT is still pending (the server keeps reading while a WAIT waits).
  a.send(wait_bytes(k_addr1));
  a.send_hex("0d 23020000");
  CHECK(a.recv_hex(4) == "23020000");
  b.send(set_bytes(k_addr1, blob1));
  CHECK(a.recv_hex(1) == "00");  // STOP_WAITING once the key exists
  a.send(get_bytes(k_addr1));
  CHECK(a.recv(8 + 170) == from_hex("aa00000000000000") + blob1);

  for (const auto& [key, blob] : {std::pair{k_addr0, blob0}, std::pair{k_addr1, blob1}}) {
    b.send(wait_bytes(key));
    CHECK(b.recv_hex(1) == "00");
    b.send(get_bytes(key));
    CHECK(b.recv(8 + 170) == from_hex("aa00000000000000") + blob);
  }

  // The user's set through the default store, and the other worker's get.
  a.send(set_bytes(k_probe, "value"));
  b.send(wait_bytes(k_probe));
  CHECK(b.recv_hex(1) == "00");
  b.send(get_bytes(k_probe));
  CHECK(b.recv_hex(13) == "0500000000000000" + to_hex("value"));

  // destroy_process_group closes the connections; the server holds 4 keys, as torch's did.
  a.close();
  b.close();
  CHECK(server.num_keys() == 4);
  auto keys = server.list_keys();
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{k_addr0, k_addr1, k_probe, "init/"});
  CHECK(server.try_get("init/") == "2");
}

TEST_CASE("command replies match torch 2.11's libuv server byte for byte") {
  StoreServer server({});
  RawClient c(server.port());
  c.validate();
  // COMPARE_SET, key missing, expected "x": nothing stored, "x" replied (torch's quirk).
  c.send("\x02" + framed("cs") + framed("x") + framed("y"));
  CHECK(c.recv_hex(9) == "010000000000000078");
  // COMPARE_SET, key missing, expected "": stored, desired replied.
  c.send("\x02" + framed("cs") + framed("") + framed("y"));
  CHECK(c.recv_hex(9) == "010000000000000079");
  // COMPARE_SET, key present, expected differs: unchanged, current value replied.
  c.send("\x02" + framed("cs") + framed("z") + framed("w"));
  CHECK(c.recv_hex(9) == "010000000000000079");
  // COMPARE_SET, key present, expected matches: replaced.
  c.send("\x02" + framed("cs") + framed("y") + framed("w"));
  CHECK(c.recv_hex(9) == "010000000000000077");
  c.send("\x11");  // LIST_KEYS
  CHECK(c.recv_hex(8 + 8 + 2) == "0100000000000000" "0200000000000000" "6373");
  c.send("\x07");  // GETNUMKEYS
  CHECK(c.recv_hex(8) == "0100000000000000");
  // Queues: push has no reply; LEN; POP replies the length before the pop, then the value.
  c.send("\x0e" + framed("q") + framed("a"));
  c.send("\x10" + framed("q"));
  CHECK(c.recv_hex(8) == "0100000000000000");
  c.send("\x0f" + framed("q"));
  CHECK(c.recv_hex(17) == "0100000000000000" "0100000000000000" "61");
  c.send("\x0f" + framed("q"));  // empty: just the length 0
  CHECK(c.recv_hex(8) == "0000000000000000");
  c.send("\x05" + u64_le(1) + framed("q"));  // CHECK of an empty queue: NOT_READY
  CHECK(c.recv_hex(1) == "01");
  c.send("\x08" + framed("cs"));  // DELETE_KEY of a present key
  CHECK(c.recv_hex(8) == "0100000000000000");
  c.send("\x08" + framed("cs"));  // ... and of a missing one
  CHECK(c.recv_hex(8) == "0000000000000000");
  c.send("\x03" + framed("missing"));  // GET of a missing key: empty value
  CHECK(c.recv_hex(8) == "0000000000000000");
  c.send("\x06" + u64_le(1) + framed("w1"));  // WAIT that cannot finish, then CANCEL_WAIT
  c.send("\x0c");
  CHECK(c.recv_hex(1) == "01");  // WAIT_CANCELED, and no STOP_WAITING before it
  c.send("\x0a" + u64_le(2) + framed("cs") + framed("nope"));  // MULTI_GET of missing keys
  CHECK(c.recv_hex(16) == "0000000000000000" "0000000000000000");
  c.send("\x04" + framed("n") + from_hex("fbffffffffffffff"));  // ADD -5 to a missing key
  CHECK(c.recv_hex(8) == "fbffffffffffffff");
  c.send("\x09" + framed("n") + framed("7"));  // APPEND to the counter's text: "-5" + "7"
  c.send("\x03" + framed("n"));
  CHECK(c.recv_hex(11) == "0300000000000000" "2d3537");
  c.send("\x04" + framed("n") + from_hex("0100000000000000"));  // "-57" + 1
  CHECK(c.recv_hex(8) == "c8ffffffffffffff");
  c.send("\x05" + u64_le(0));  // CHECK of no keys: READY
  CHECK(c.recv_hex(1) == "00");
  c.send("\x06" + u64_le(0));  // WAIT for no keys: at once
  CHECK(c.recv_hex(1) == "00");
  c.send("\x0b" + u64_le(2) + framed("m1") + framed("v1") + framed("m2") + framed("v2"));  // MULTI_SET: no reply
  c.send("\x0a" + u64_le(2) + framed("m2") + framed("m1"));
  CHECK(c.recv(20) == u64_le(2) + "v2" + u64_le(2) + "v1");
}

TEST_CASE("a WAIT on several keys is answered only when the last of them is set") {
  StoreServer server({});
  RawClient waiter(server.port()), setter(server.port());
  waiter.validate();
  setter.validate();
  waiter.send("\x06" + u64_le(3) + framed("k1") + framed("k2") + framed("k3"));
  setter.send(set_bytes("k2", "x"));
  setter.send("\x04" + framed("k1") + u64_le(1));  // ADD creates a key too
  CHECK(setter.recv_hex(8) == "0100000000000000");
  waiter.send_hex("0d 01000000");  // still waiting: the PING echo comes first
  CHECK(waiter.recv_hex(4) == "01000000");
  setter.send("\x09" + framed("k3") + framed("tail"));  // APPEND creates the last one
  CHECK(waiter.recv_hex(1) == "00");
}

TEST_CASE("a WAIT on a queue is answered by a push, one waiter per element") {
  StoreServer server({});
  RawClient w1(server.port()), w2(server.port()), pusher(server.port());
  for (auto* c : {&w1, &w2, &pusher}) c->validate();
  w1.send(wait_bytes("jobs"));
  w2.send(wait_bytes("jobs"));
  w1.send_hex("0d 01000000");  // make sure both WAITs are registered
  CHECK(w1.recv_hex(4) == "01000000");
  w2.send_hex("0d 02000000");
  CHECK(w2.recv_hex(4) == "02000000");
  pusher.send("\x0e" + framed("jobs") + framed("one"));
  CHECK(w1.recv_hex(1) == "00");  // the first waiter only
  w2.send_hex("0d 03000000");
  CHECK(w2.recv_hex(4) == "03000000");
  pusher.send("\x0e" + framed("jobs") + framed("two"));
  CHECK(w2.recv_hex(1) == "00");
}

TEST_CASE("an in-process set wakes network waiters") {
  StoreServer server({});
  RawClient c(server.port());
  c.validate();
  c.send(wait_bytes("dslaunch/config"));
  c.send_hex("0d 05000000");
  CHECK(c.recv_hex(4) == "05000000");
  server.set("dslaunch/config", "{}");
  CHECK(c.recv_hex(1) == "00");
  CHECK(server.try_get("dslaunch/config") == "{}");
  CHECK_FALSE(server.try_get("absent"));
}

TEST_CASE("a connection that does not start with VALIDATE is closed without a reply") {
  StoreServer server({});
  RawClient c(server.port());
  c.send(get_bytes("k"));
  CHECK(c.closed_by_server());
  RawClient wrong_magic(server.port());
  wrong_magic.send_hex("00 cef7853d 0d 01000000");
  CHECK(wrong_magic.closed_by_server());
}

TEST_CASE("protocol violations close only the offending connection") {
  StoreServer server({});
  RawClient good(server.port());
  good.validate();
  good.send(set_bytes("counter", "abc"));

  SECTION("a second VALIDATE") {
    RawClient c(server.port());
    c.send_hex("00 cef7853c 00 cef7853c");
    CHECK(c.closed_by_server());
  }
  SECTION("a command byte outside the enum") {
    RawClient c(server.port());
    c.send_hex("00 cef7853c 12");
    CHECK(c.closed_by_server());
  }
  SECTION("a key over 8 KiB") {
    RawClient c(server.port());
    c.validate();
    c.send("\x03" + u64_le(9000));
    CHECK(c.closed_by_server());
  }
  SECTION("a value over 8 MiB") {
    RawClient c(server.port());
    c.validate();
    c.send("\x01" + framed("k") + u64_le(8 * 1024 * 1024 + 1));
    CHECK(c.closed_by_server());
  }
  SECTION("ADD on a value that is not a number") {
    RawClient c(server.port());
    c.validate();
    c.send("\x04" + framed("counter") + u64_le(1));
    CHECK(c.closed_by_server());
    CHECK(server.try_get("counter") == "abc");
  }
  SECTION("replies queued before the violation are still delivered") {
    RawClient c(server.port());
    c.send_hex("00 cef7853c 0d 09000000 ff");
    CHECK(c.recv_hex(4) == "09000000");
    CHECK(c.closed_by_server());
  }
  // The server carries on for everyone else.
  good.send_hex("0d 07000000");
  CHECK(good.recv_hex(4) == "07000000");
}

TEST_CASE("a request split into single bytes is executed once complete") {
  StoreServer server({});
  RawClient c(server.port());
  const std::string bytes = from_hex("00 cef7853c") + set_bytes("k", "value") + get_bytes("k");
  for (char byte : bytes) c.send(std::string(1, byte));
  CHECK(c.recv(13) == u64_le(5) + "value");
}

TEST_CASE("ADD keeps decimal text and reads it as torch's stoll does") {
  StoreServer server({});
  RawClient c(server.port());
  c.validate();
  c.send(set_bytes("n", " 41xyz"));  // leading space and trailing junk, as std::stoll allows
  c.send("\x04" + framed("n") + u64_le(1));
  CHECK(c.recv(8) == u64_le(42));
  CHECK(server.try_get("n") == "42");
  c.send(set_bytes("big", "9223372036854775807"));
  c.send("\x04" + framed("big") + u64_le(1));  // overflow closes the connection, value kept
  CHECK(c.closed_by_server());
  CHECK(server.try_get("big") == "9223372036854775807");
}
