// Many clients at once: the store must serve a thousand connections (DESIGN §5).
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "base/error.hpp"
#include "store/store_client.hpp"
#include "store/store_server.hpp"

using namespace ds;
using namespace ds::store;
using namespace std::chrono_literals;

TEST_CASE("1000 concurrent clients, each on its own connection, pass through a barrier") {
  constexpr int k_clients = 1000;
  StoreServer server({});
  std::atomic<int> passed{0}, failed{0};
  std::string first_error;
  std::mutex error_mutex;
  std::vector<std::thread> threads;
  threads.reserve(k_clients);
  for (int rank = 0; rank < k_clients; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        StoreClient client({.port = server.port(), .timeout = 120s, .connect_timeout = 60s});
        client.barrier("thousand", k_clients, rank, 120s);
        ++passed;
      } catch (const std::exception& e) {
        ++failed;
        std::lock_guard lock(error_mutex);
        if (first_error.empty()) first_error = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  INFO(first_error);
  CHECK(failed == 0);
  CHECK(passed == k_clients);
  CHECK(server.try_get("thousand/count") == std::to_string(k_clients));
  CHECK(server.num_keys() == k_clients + 2);  // one key per rank, the count, done
}
