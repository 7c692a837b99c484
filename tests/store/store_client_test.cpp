#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <thread>

#include "base/error.hpp"
#include "store/memory_store.hpp"
#include "store/store_barrier.hpp"
#include "store/store_client.hpp"
#include "store/store_server.hpp"
#include "support/skip.hpp"

using namespace ds;
using namespace ds::store;
using namespace std::chrono_literals;

namespace {

StoreClient connect_to(const StoreServer& server, std::chrono::milliseconds timeout = 20s) {
  return StoreClient({.host = "127.0.0.1", .port = server.port(), .timeout = timeout, .connect_timeout = 5s});
}

}  // namespace

TEST_CASE("port 0 gives a free port that clients can use") {
  StoreServer server({.bind_host = "127.0.0.1", .port = 0});
  REQUIRE(server.port() != 0);
  StoreClient client = connect_to(server);
  client.set("a", "1");
  CHECK(client.get("a") == "1");
  StoreServer second({.port = 0});
  CHECK(second.port() != server.port());
}

TEST_CASE("set, get, try_get, add, check and delete_key behave as the KeyValueStore contract says") {
  StoreServer server({});
  StoreClient client = connect_to(server);
  client.set("k", std::string("bin\0ary", 7));
  CHECK(client.get("k") == std::string("bin\0ary", 7));
  CHECK(client.try_get("k") == std::string("bin\0ary", 7));
  CHECK_FALSE(client.try_get("nope"));
  client.set("empty", "");
  CHECK(client.try_get("empty") == "");  // present with an empty value is not missing
  CHECK(client.add("n", 5) == 5);
  CHECK(client.add("n", -7) == -2);
  CHECK(client.get("n") == "-2");
  CHECK(client.check({"k", "n"}));
  CHECK_FALSE(client.check({"k", "nope"}));
  CHECK(client.delete_key("k"));
  CHECK_FALSE(client.delete_key("k"));
  CHECK_FALSE(client.check({"k"}));
  CHECK(server.try_get("n") == "-2");
}

TEST_CASE("compare_set follows torch's three cases") {
  StoreServer server({});
  StoreClient client = connect_to(server);
  CHECK(client.compare_set("c", "x", "y") == "x");  // missing, expected != "": the quirk
  CHECK_FALSE(client.try_get("c"));
  CHECK(client.compare_set("c", "", "first") == "first");  // missing, expected "": created
  CHECK(client.compare_set("c", "wrong", "second") == "first");  // mismatch: unchanged
  CHECK(client.compare_set("c", "first", "second") == "second");  // match: swapped
  CHECK(client.get("c") == "second");
}

TEST_CASE("append, multi_set, multi_get, num_keys and list_keys work together") {
  StoreServer server({});
  StoreClient client = connect_to(server);
  client.append("log", "a");
  client.append("log", "bc");
  CHECK(client.get("log") == "abc");
  client.multi_set({"m1", "m2", "m3"}, {"1", "2", "3"});
  CHECK(client.multi_get({"m3", "m1", "log"}) == std::vector<std::string>{"3", "1", "abc"});
  CHECK(client.num_keys() == 4);
  auto keys = client.list_keys();
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"log", "m1", "m2", "m3"});
  CHECK_THROWS_AS(client.multi_set({"a"}, {}), UsageError);
}

TEST_CASE("queues pop in order and a blocking pop waits for a push") {
  StoreServer server({});
  StoreClient client = connect_to(server);
  client.queue_push("q", "1");
  client.queue_push("q", "2");
  CHECK(client.queue_len("q") == 2);
  CHECK(client.queue_pop("q", QueueWait::no) == "1");
  CHECK(client.queue_pop("q", QueueWait::no) == "2");
  CHECK_FALSE(client.queue_pop("q", QueueWait::no));
  std::thread pusher([&] {
    StoreClient other = connect_to(server);
    other.wait({"popper-waiting"}, 20s);
    other.queue_push("q", "late");
  });
  // The pusher pushes only after this key exists; the blocking pop then waits for the element.
  StoreClient signal = connect_to(server);
  signal.set("popper-waiting", "1");
  CHECK(client.queue_pop("q", QueueWait::yes) == "late");
  pusher.join();
}

TEST_CASE("get waits for a key that another client sets later") {
  StoreServer server({});
  StoreClient reader = connect_to(server);
  std::thread writer([&] {
    StoreClient w = connect_to(server);
    w.wait({"reader-ready"}, 20s);
    w.set("late", "value");
  });
  server.set("reader-ready", "1");
  CHECK(reader.get("late") == "value");
  writer.join();
}

TEST_CASE("many threads adding to one counter give the exact total") {
  StoreServer server({});
  constexpr int k_threads = 16, k_adds = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      StoreClient client = connect_to(server);
      for (int i = 0; i < k_adds; ++i) client.add("total", t % 2 ? 3 : 1);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(server.try_get("total") == std::to_string(k_threads / 2 * k_adds * (1 + 3)));
}

TEST_CASE("threads sharing one client get their own replies") {
  StoreServer server({});
  StoreClient shared = connect_to(server);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const std::string key = "t" + std::to_string(t) + "/" + std::to_string(i);
        shared.set(key, key);
        if (shared.get(key) != key) ++wrong;
        shared.add("count", 1);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
  CHECK(shared.get("count") == "1600");
}

TEST_CASE("a get that times out names the key, the time and the store, and the client stays usable") {
  StoreServer server({});
  StoreClient client = connect_to(server, 200ms);
  const std::string where = "127.0.0.1:" + std::to_string(server.port());
  CHECK_THROWS_MATCHES(client.get("never/set"), RendezvousTimeout,
                       Catch::Message("timed out after 200 ms waiting for store key 'never/set' at " + where +
                                      " (get): no rank has set it. Check that the rank that publishes it is alive and "
                                      "spells the key the same way"));
  // CANCEL_WAIT kept the connection in step: the next request gets its own reply.
  client.set("x", "1");
  CHECK(client.get("x") == "1");
}

TEST_CASE("a wait that times out names only the missing keys") {
  StoreServer server({});
  StoreClient client = connect_to(server);
  client.set("here", "1");
  const std::string where = "127.0.0.1:" + std::to_string(server.port());
  CHECK_THROWS_MATCHES(client.wait({"here", "gone/a", "gone/b"}, 150ms), RendezvousTimeout,
                       Catch::Message("timed out after 150 ms waiting for store keys at " + where +
                                      "; missing: 'gone/a', 'gone/b' (of 3 waited for)"));
  CHECK(client.add("after", 1) == 1);
}

TEST_CASE("a barrier that times out says how many ranks joined and which are missing") {
  StoreServer server({});
  std::vector<std::thread> ranks;
  std::atomic<int> timeouts{0};
  std::string message;
  std::mutex message_mutex;
  for (int rank : {0, 1, 3}) {  // rank 2 never comes
    ranks.emplace_back([&, rank] {
      StoreClient client = connect_to(server);
      try {
        client.barrier("x", 4, rank, 1s);
      } catch (const RendezvousTimeout& e) {
        ++timeouts;
        std::lock_guard lock(message_mutex);
        message = e.what();
      }
    });
  }
  for (auto& t : ranks) t.join();
  CHECK(timeouts == 3);
  CHECK(message == "rendezvous barrier 'x' timed out after 1 s: 3 of 4 ranks joined; missing ranks: 2");
}

TEST_CASE("the barrier works on a MemoryStore too, and rejects a bad rank") {
  MemoryStore store(5s);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 4; ++r) ranks.emplace_back([&, r] { store_barrier(store, "mem", 4, r, 5s); });
  for (auto& t : ranks) t.join();
  CHECK(store.try_get("mem/done") == "1");
  CHECK_THROWS_AS(store_barrier(store, "bad", 4, 4, 1s), UsageError);
}

TEST_CASE("a barrier joined more often than the world size is an error, not a hang") {
  StoreServer server({});
  StoreClient client = connect_to(server);
  client.barrier("once", 1, 0, 5s);
  CHECK_THROWS_WITH(client.barrier("once", 1, 0, 5s),
                    "rendezvous barrier 'once' was joined 2 times but the world size is 1: a rank joined twice or the "
                    "barrier name was reused; use a fresh name per barrier");
}

TEST_CASE("the server listens on IPv6 loopback when asked, and clients reach it") {
  std::unique_ptr<StoreServer> server;
  try {
    server = std::make_unique<StoreServer>(StoreServerOptions{.bind_host = "::1"});
  } catch (const RendezvousError& e) {
    DS_SKIP(std::string("no IPv6 loopback on this machine (") + e.what() + ")");
  }
  StoreClient client({.host = "::1", .port = server->port(), .connect_timeout = 5s});
  CHECK(client.add("v6", 2) == 2);
  CHECK(server->try_get("v6") == "2");
}

TEST_CASE("a wait as long as the client's own timeout still times out naming the missing keys") {
  StoreServer server({});
  // The wait uses up the client's whole timeout; naming the missing keys afterwards must not be
  // cut short by that same, spent deadline (it once reported "no reply from the store" instead).
  StoreClient client({.host = "127.0.0.1", .port = server.port(), .timeout = 300ms});
  client.set("here", "1");
  CHECK_THROWS_AS(client.wait({"here", "missing"}, 300ms), RendezvousTimeout);
  CHECK_THROWS_WITH(client.wait({"here", "missing"}, 300ms), Catch::Contains("missing: 'missing' (of 2 waited for)"));
  CHECK(client.try_get("here") == "1");  // the connection is still usable
}
