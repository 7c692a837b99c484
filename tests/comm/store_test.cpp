// GlooComm over the real rendezvous store: a StoreServer in this process and one StoreClient per
// rank, as dsworker ranks use it (Gloo's addresses are binary values; the store must carry them).
#include <catch2/catch.hpp>

#include <thread>

#include "comm/comm_support.hpp"
#include "store/store_client.hpp"
#include "store/store_server.hpp"

using namespace ds;
using namespace ds::comm;
using namespace ds::store;

TEST_CASE("ranks rendezvous through the TCP store and run collectives") {
  StoreServer server({});
  const int size = 3;
  std::vector<std::string> messages(size);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        StoreClient store({.host = "127.0.0.1", .port = server.port(), .timeout = std::chrono::seconds(20)});
        auto comm = make_gloo_comm(store, {.rank = rank, .size = size, .prefix = "job/attempt0/dp",
                                           .timeout = std::chrono::seconds(20)});
        std::vector<float> x(1000, static_cast<float>(rank + 1));
        comm->all_reduce(x.data(), 1000, DType::f32, ReduceOp::sum)->wait();
        ds::test::expect(x[0] == 6.0f && x[999] == 6.0f, "all_reduce over the TCP store gave " + std::to_string(x[0]));
        comm->barrier();
      } catch (const std::exception& e) {
        messages[static_cast<size_t>(rank)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ds::test::rank_failures(messages) == "");
}
