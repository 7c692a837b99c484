// The small pieces: the chunking rule, the one-rank communicator, the bandwidth helper, the timeout
// from the environment.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "comm/comm_support.hpp"
#include "comm/comm_bandwidth.hpp"
#include "comm/comm_reduce.hpp"
#include "comm/comm_single.hpp"
#include "base/error.hpp"

using namespace ds;
using namespace ds::comm;
using namespace ds::store;
using Catch::Matchers::Contains;

TEST_CASE("ring chunks are size equal chunks when size divides n, else ceil-sized with shorter last chunks") {
  auto chunks = [](int64_t n, int size) {
    std::vector<std::pair<int64_t, int64_t>> out;
    for (int c = 0; c < size; ++c) out.emplace_back(comm_chunk(n, size, c).begin, comm_chunk(n, size, c).count);
    return out;
  };
  using V = std::vector<std::pair<int64_t, int64_t>>;
  CHECK(chunks(12, 4) == V{{0, 3}, {3, 3}, {6, 3}, {9, 3}});
  CHECK(chunks(10, 4) == V{{0, 3}, {3, 3}, {6, 3}, {9, 1}});
  CHECK(chunks(5, 4) == V{{0, 2}, {2, 2}, {4, 1}, {5, 0}});
  CHECK(chunks(1, 3) == V{{0, 1}, {1, 0}, {1, 0}});
  CHECK(chunks(0, 2) == V{{0, 0}, {0, 0}});
  CHECK(chunks(7, 1) == V{{0, 7}});
}

TEST_CASE("the single-rank communicator completes every op at once with a one-rank world's results") {
  auto comm = make_single_rank_comm();
  CHECK(comm->rank() == 0);
  CHECK(comm->size() == 1);
  std::vector<float> buf = {1, 2, 3};
  auto work = comm->all_reduce(buf.data(), 3, DType::f32, ReduceOp::sum);
  CHECK(work->done());
  work->wait();
  CHECK(buf == std::vector<float>{1, 2, 3});
  std::vector<float> out(3);
  comm->reduce_scatter(buf.data(), out.data(), 3, DType::f32, ReduceOp::max)->wait();
  CHECK(out == buf);
  std::vector<float> gathered(3);
  all_gather(*comm, TensorRef{buf.data(), DType::f32, 3}, TensorRef{gathered.data(), DType::f32, 3});
  CHECK(gathered == buf);
  comm->reduce_scatter(buf.data(), buf.data(), 3, DType::f32, ReduceOp::sum)->wait();  // in place
  comm->broadcast(buf.data(), 3, DType::f32, 0)->wait();
  comm->barrier();
  CHECK(buf == std::vector<float>{1, 2, 3});
}

TEST_CASE("the blocking wrappers run the op on tensor views") {
  auto messages = ds::test::run_world(2, [](int rank, std::unique_ptr<Comm>& comm) {
    std::vector<float> x = {static_cast<float>(rank), 1};
    all_reduce(*comm, TensorRef{x.data(), DType::f32, 2});
    ds::test::expect(x == std::vector<float>{1, 2}, "all_reduce wrapper");
    std::vector<float> mine(1);
    reduce_scatter(*comm, TensorRef{x.data(), DType::f32, 2}, TensorRef{mine.data(), DType::f32, 1}, ReduceOp::max);
    ds::test::expect(mine[0] == x[static_cast<size_t>(rank)], "reduce_scatter wrapper");
    float v = rank == 1 ? 5.0f : 0.0f;
    broadcast(*comm, TensorRef{&v, DType::f32, 1}, 1);
    ds::test::expect(v == 5.0f, "broadcast wrapper");
  });
  CHECK(ds::test::rank_failures(messages) == "");
}

TEST_CASE("max and min propagate NaN so an overflow anywhere shows on every rank") {
  auto messages = ds::test::run_world(3, [](int rank, std::unique_ptr<Comm>& comm) {
    std::vector<float> x = {rank == 1 ? NAN : 1.0f, 2.0f};
    comm->all_reduce(x.data(), 2, DType::f32, ReduceOp::max)->wait();
    ds::test::expect(std::isnan(x[0]) && x[1] == 2.0f, "max lost the NaN");
    std::vector<float> y = {rank == 2 ? NAN : 1.0f};
    comm->all_reduce(y.data(), 1, DType::f32, ReduceOp::min)->wait();
    ds::test::expect(std::isnan(y[0]), "min lost the NaN");
  });
  CHECK(ds::test::rank_failures(messages) == "");
}

TEST_CASE("bus bandwidth follows nccl-tests: 2(n-1)/n for all_reduce, (n-1)/n for reduce_scatter and all_gather") {
  const auto ar = collective_bandwidth(Collective::all_reduce, 8'000'000'000, 2.0, 4);
  CHECK(ar.alg_gbps == Approx(4.0));
  CHECK(ar.bus_gbps == Approx(6.0));
  const auto rs = collective_bandwidth(Collective::reduce_scatter, 8'000'000'000, 2.0, 4);
  CHECK(rs.bus_gbps == Approx(3.0));
  const auto ag = collective_bandwidth(Collective::all_gather, 1'000'000'000, 1.0, 2);
  CHECK(ag.alg_gbps == Approx(1.0));
  CHECK(ag.bus_gbps == Approx(0.5));
  CHECK(collective_bandwidth(Collective::broadcast, 1'000'000'000, 1.0, 8).bus_gbps == Approx(1.0));
  CHECK(collective_bandwidth(Collective::all_reduce, 1'000'000'000, 1.0, 1).bus_gbps == Approx(0.0));
}

TEST_CASE("the communication timeout comes from DSLAUNCH_COMM_TIMEOUT in seconds, else 30 minutes") {
  ::unsetenv("DSLAUNCH_COMM_TIMEOUT");
  CHECK(comm_timeout_from_env() == std::chrono::minutes(30));
  ::setenv("DSLAUNCH_COMM_TIMEOUT", "2.5", 1);
  CHECK(comm_timeout_from_env() == std::chrono::milliseconds(2500));
  ::setenv("DSLAUNCH_COMM_TIMEOUT", "soon", 1);
  CHECK_THROWS_WITH(comm_timeout_from_env(),
                    "DSLAUNCH_COMM_TIMEOUT='soon' is not a positive number of seconds (e.g. DSLAUNCH_COMM_TIMEOUT=600)");
  ::setenv("DSLAUNCH_COMM_TIMEOUT", "0", 1);
  CHECK_THROWS_AS(comm_timeout_from_env(), UsageError);
  ::unsetenv("DSLAUNCH_COMM_TIMEOUT");
}

TEST_CASE("the reductions' branch-free fp16 and bf16 conversions give the same bits as dtype.hpp's") {
  using namespace ds::comm::comm_detail;
  // Every half and bfloat16 loads the same.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const auto h = f16::from_bits(static_cast<uint16_t>(b));
    const auto g = bf16::from_bits(static_cast<uint16_t>(b));
    REQUIRE(std::bit_cast<uint32_t>(load_fast(h)) == std::bit_cast<uint32_t>(to_float(h)));
    REQUIRE(std::bit_cast<uint32_t>(load_fast(g)) == std::bit_cast<uint32_t>(to_float(g)));
  }
  // Stores: every pattern of the sign, exponent and top mantissa bits, with the bits that rounding
  // looks at set to the interesting values (exact, just below/at/above half way for fp16's 13 and
  // bf16's 16 dropped bits), plus a spread of arbitrary floats. (All 2^32 floats were checked once
  // offline when these were written.)
  // fp16 keeps bit 13 (its last mantissa bit: odd or even ties), bf16 bit 16 (from `top`).
  const uint32_t low_bits[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000, 0x2fff, 0x3000,
                               0x3001, 0x7fff, 0x8000, 0x8001, 0xefff, 0xf000, 0xf001, 0xffff};
  int64_t checked = 0;
  for (uint32_t top = 0; top < (1u << 16); ++top)
    for (uint32_t low : low_bits) {
      const float x = std::bit_cast<float>((top << 16) | low);
      REQUIRE(store_fast_f16(x).bits == to_f16(x).bits);
      REQUIRE(store_fast_bf16(x).bits == to_bf16(x).bits);
      ++checked;
    }
  for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(u));
    REQUIRE(store_fast_f16(x).bits == to_f16(x).bits);
    REQUIRE(store_fast_bf16(x).bits == to_bf16(x).bits);
    ++checked;
  }
  CHECK(checked > 1'000'000);
}
