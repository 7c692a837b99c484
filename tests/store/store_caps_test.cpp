// The caps against hostile or buggy clients (store_limits.hpp): each refusal closes that client's
// connection alone, is logged once with its address and the cap, and everyone else goes on.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include "base/error.hpp"
#include "base/log.hpp"
#include "store/store_auth.hpp"
#include "store/store_client.hpp"
#include "store/store_server.hpp"
#include "store_test_util.hpp"
#include "support/process.hpp"

using namespace ds;
using namespace ds::store;
using namespace std::chrono_literals;
using ds::test::framed;
using ds::test::RawClient;
using ds::test::u64_le;

namespace {

constexpr const char* k_token = "caps-test-token";

StoreClient member(const StoreServer& server) {
  return StoreClient({.host = "127.0.0.1", .port = server.port(), .token = k_token, .timeout = 20s, .connect_timeout = 5s});
}

StoreServerOptions options_with(StoreLimits limits) {
  StoreServerOptions o;
  o.token = k_token;
  o.limits = limits;
  return o;
}

// Waits until pred() holds (polling); false after timeout. For state the io thread changes.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Everything written to stderr (the log) while it lives.
class StderrCapture {
 public:
  StderrCapture() : m_path(m_dir.file("stderr")) {
    std::fflush(stderr);
    m_saved = ::dup(2);
    const int fd = ::open(m_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ~StderrCapture() { restore(); }
  std::string text() {
    restore();
    return ds::test::slurp(m_path);
  }

 private:
  void restore() {
    if (m_saved < 0) return;
    std::fflush(stderr);
    ::dup2(m_saved, 2);
    ::close(m_saved);
    m_saved = -1;
  }
  ds::test::TempDir m_dir;
  std::string m_path;
  int m_saved = -1;
};

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

std::string multi_get_request(const std::string& key, uint64_t times) {
  std::string request = "\x0a" + u64_le(times);
  const std::string framed_key = framed(key);
  for (uint64_t i = 0; i < times; ++i) request += framed_key;
  return request;
}

}  // namespace

TEST_CASE("a MULTI_GET whose reply would pass max_reply_bytes is refused before it is built") {
  StoreServer server(options_with({.max_reply_bytes = 1u << 20}));
  server.set("big", std::string(512u << 10, 'x'));
  StderrCapture log;
  RawClient hostile(server.port());
  hostile.validate();
  hostile.send(multi_get_request("big", 100'000));  // would be ~50 GB
  CHECK(hostile.closed_by_server());
  CHECK(server.refusals(StoreCap::reply_bytes) == 1);
  // A reply under the cap is served, on another connection and after the refusal.
  StoreClient client = member(server);
  CHECK(client.multi_get({"big"}) == std::vector<std::string>{std::string(512u << 10, 'x')});
  const std::string text = log.text();
  INFO(text);
  CHECK(count_of(text, "store: refused the client at 127.0.0.1:") == 1);
  CHECK(count_of(text, "(max_reply_bytes 1048576): the reply to its MULTI_GET of 100000 keys would be 52429600000 bytes") == 1);
}

TEST_CASE("LIST_KEYS and GET replies are capped too") {
  StoreServer server(options_with({.max_reply_bytes = 64u << 10}));
  SECTION("LIST_KEYS of more key bytes than the cap") {
    for (int i = 0; i < 100; ++i) server.set("key-" + std::to_string(i) + std::string(1000, 'k'), "1");
    RawClient c(server.port());
    c.validate();
    c.send("\x11");
    CHECK(c.closed_by_server());
    CHECK(server.refusals(StoreCap::reply_bytes) == 1);
  }
  SECTION("GET of a value grown past the cap by APPEND") {
    StoreClient writer = member(server);
    for (int i = 0; i < 5; ++i) writer.append("grown", std::string(20u << 10, 'a'));
    CHECK(writer.num_keys() == 1);  // a reply: the APPENDs are applied
    CHECK_THROWS_AS(writer.get("grown"), StoreError);
    CHECK(server.refusals(StoreCap::reply_bytes) == 1);
    CHECK_THROWS_AS(member(server).multi_get({"grown"}), StoreError);  // refused as well
    CHECK(server.refusals(StoreCap::reply_bytes) == 2);
  }
}

TEST_CASE("a client that sends requests without reading replies is paused, then dropped") {
  StoreServer server(options_with({.max_reply_bytes = 2u << 20, .request_timeout = 300ms}));
  server.set("value", std::string(1u << 20, 'v'));
  RawClient greedy(server.port());
  greedy.validate();
  std::string gets;
  for (int i = 0; i < 200; ++i) gets += "\x03" + framed("value");  // 200 MiB of replies, never read
  greedy.send(gets);
  CHECK(eventually([&] { return server.refusals(StoreCap::request_timeout) == 1; }));
  StoreClient client = member(server);
  client.set("after", "1");
  CHECK(client.get("after") == "1");
}

TEST_CASE("a write that would pass max_stored_bytes is refused and changes nothing") {
  StoreServer server(options_with({.max_stored_bytes = 64u << 10}));
  StoreClient client = member(server);
  client.set("a", std::string(40u << 10, '1'));
  CHECK(client.num_keys() == 1);
  CHECK(server.stored_bytes() == 1 + (40u << 10));
  SECTION("SET of a new key") {
    RawClient c(server.port());
    c.validate();
    c.send("\x01" + framed("b") + framed(std::string(40u << 10, '2')));
    CHECK(c.closed_by_server());
    CHECK_FALSE(server.try_get("b"));
  }
  SECTION("APPEND, QUEUE_PUSH and MULTI_SET") {
    for (const std::string& request : {"\x09" + framed("a") + framed(std::string(30u << 10, '3')),
                                       "\x0e" + framed("q") + framed(std::string(30u << 10, '4')),
                                       "\x0b" + u64_le(2) + framed("m1") + framed(std::string(20u << 10, '5')) + framed("m2") +
                                           framed(std::string(20u << 10, '6'))}) {
      RawClient c(server.port());
      c.validate();
      c.send(request);
      CHECK(c.closed_by_server());
    }
    CHECK(server.refusals(StoreCap::stored_bytes) == 3);
    CHECK(server.try_get("a")->size() == 40u << 10);
    CHECK(client.queue_len("q") == 0);
    CHECK_FALSE(server.try_get("m1"));  // a refused MULTI_SET stores none of its keys
  }
  // Space comes back: a smaller value, a delete, a pop.
  client.set("a", "small");
  client.queue_push("q", std::string(50u << 10, 'q'));
  CHECK(client.queue_len("q") == 1);
  CHECK(server.stored_bytes() == 1 + 5 + 1 + (50u << 10));
  CHECK(client.queue_pop("q", QueueWait::no)->size() == 50u << 10);
  CHECK(client.delete_key("a"));
  CHECK(server.stored_bytes() == 0);
  // The launcher's own writes are counted but never refused.
  server.set("dslaunch/plan", std::string(100u << 10, 'p'));
  CHECK(server.stored_bytes() == 13 + (100u << 10));
}

TEST_CASE("a connection beyond max_connections is closed at once; the others go on") {
  StoreServer server(options_with({.max_connections = 3}));
  StderrCapture log;
  std::vector<std::unique_ptr<RawClient>> open;
  for (int i = 0; i < 3; ++i) {
    open.push_back(std::make_unique<RawClient>(server.port()));
    open.back()->validate();
  }
  REQUIRE(eventually([&] { return server.num_connections() == 3; }));
  RawClient extra(server.port());
  CHECK(extra.closed_by_server());
  CHECK(server.refusals(StoreCap::connections) == 1);
  open[0]->send("\x0d" + u64_le(0).substr(0, 4));  // PING still answered on the open ones
  CHECK(open[0]->recv(4) == u64_le(0).substr(0, 4));
  open.pop_back();
  REQUIRE(eventually([&] { return server.num_connections() == 2; }));
  StoreClient client = member(server);  // a slot is free again
  CHECK(client.add("n", 1) == 1);
  const std::string text = log.text();
  INFO(text);
  CHECK(count_of(text, "(max_connections 3): 3 connections are open already") == 1);
}

TEST_CASE("a partial request is dropped after request_timeout without blocking anyone") {
  StoreServer server(options_with({.request_timeout = 300ms}));
  StderrCapture log;
  RawClient stalled(server.port());
  stalled.validate();
  stalled.send("\x01" + framed("half") + u64_le(100) + "only this");  // a SET of 100 bytes, 9 sent
  // Others are served while it stalls.
  StoreClient client = member(server);
  client.set("k", "v");
  CHECK(client.get("k") == "v");
  CHECK(stalled.closed_by_server());
  CHECK(server.refusals(StoreCap::request_timeout) == 1);
  CHECK_FALSE(server.try_get("half"));
  const std::string text = log.text();
  INFO(text);
  CHECK(count_of(text, "(request_timeout 300 ms): it sent 30 bytes of a SET request and did not finish it within 300 ms") == 1);
}

TEST_CASE("a request's clock starts at its first byte: trickling bytes does not keep it alive") {
  StoreServer server(options_with({.request_timeout = 300ms}));
  RawClient slow(server.port());
  slow.validate();
  const std::string request = "\x01" + framed("slowloris") + framed(std::string(64, 's'));
  bool closed = false;
  const auto start = std::chrono::steady_clock::now();
  try {
    for (char byte : request) {
      slow.send(std::string(1, byte));
      std::this_thread::sleep_for(50ms);
    }
  } catch (const TcpFailure&) {
    closed = true;
  }
  CHECK((closed || slow.closed_by_server()));
  CHECK(std::chrono::steady_clock::now() - start < 4s);  // not the 4.3 s the trickle would take
  CHECK(server.refusals(StoreCap::request_timeout) == 1);
  CHECK_FALSE(server.try_get("slowloris"));
}

TEST_CASE("an idle connection between requests is never dropped") {
  StoreServer server(options_with({.request_timeout = 100ms}));
  StoreClient client = member(server);
  client.set("k", "v");
  std::this_thread::sleep_for(400ms);  // four timeouts with no partial request: nothing to drop
  CHECK(client.get("k") == "v");
  CHECK(server.refusals(StoreCap::request_timeout) == 0);
}

TEST_CASE("under require_auth a connection must prove the token within request_timeout") {
  StoreServerOptions o = options_with({.request_timeout = 200ms});
  o.require_auth = true;
  StoreServer server(o);
  RawClient idle(server.port());
  idle.validate();  // and then nothing: it holds a connection slot it may not use
  CHECK(idle.closed_by_server());
  CHECK(server.refusals(StoreCap::request_timeout) == 1);
  StoreClient client = member(server);
  std::this_thread::sleep_for(400ms);
  CHECK(client.add("n", 2) == 2);  // an authenticated idle connection stays
}

TEST_CASE("a request over max_request_bytes is refused when its length arrives") {
  StoreServer server(options_with({.max_request_bytes = 4096}));
  RawClient c(server.port());
  c.validate();
  c.send("\x01" + framed("k") + u64_le(5000));
  CHECK(c.closed_by_server());
  CHECK(server.refusals(StoreCap::request_bytes) == 1);
}

TEST_CASE("after 20 logged refusals of one cap the rest are counted, not logged") {
  StoreServer server(options_with({.max_reply_bytes = 1u << 10}));
  server.set("v", std::string(600, 'v'));
  StderrCapture log;
  for (int i = 0; i < 25; ++i) {
    RawClient c(server.port());
    c.validate();
    c.send(multi_get_request("v", 2));
    CHECK(c.closed_by_server());
  }
  CHECK(server.refusals(StoreCap::reply_bytes) == 25);
  server.stop();
  const std::string text = log.text();
  CHECK(count_of(text, "store: refused the client at") == 20);
  CHECK(count_of(text, "further refusals at this cap are counted, not logged") == 1);
  CHECK(count_of(text, "store: refused 25 clients in all at max_reply_bytes (20 were logged)") == 1);
}
