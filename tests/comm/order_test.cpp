// The summation-order contract (comm_gloo.hpp, Note [ring chunks]): all_reduce equals
// reduce_scatter + all_gather bit for bit, follows the documented ring order, and gives the same bits
// run to run whatever the segment size and pipeline depth. Plus the stream contract: ops queued
// before any wait run in call order.
#include <catch2/catch.hpp>

#include <random>

#include "comm/comm_support.hpp"

using namespace ds;
using namespace ds::comm;
using namespace ds::store;
using ds::test::expect;
using ds::test::HostBuffer;

namespace {

// Rank r's random input: values spread over many magnitudes, so that the order of additions shows in
// the rounded result.
HostBuffer random_input(DType dtype, int64_t count, int rank, uint32_t seed) {
  std::mt19937 gen(seed * 1000 + static_cast<uint32_t>(rank));
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-12, 12);
  HostBuffer buf(dtype, count);
  for (int64_t i = 0; i < count; ++i) buf.set(i, std::ldexp(mantissa(gen), exponent(gen)));
  return buf;
}

// The documented order: chunk c is summed starting at rank c+1, rounding to the dtype after every +.
HostBuffer ring_order_sum(DType dtype, int64_t count, int size, uint32_t seed) {
  std::vector<HostBuffer> inputs;
  for (int r = 0; r < size; ++r) inputs.push_back(random_input(dtype, count, r, seed));
  HostBuffer out(dtype, count);
  for (int c = 0; c < size; ++c) {
    const ChunkRange chunk = comm_chunk(count, size, c);
    for (int64_t i = chunk.begin; i < chunk.begin + chunk.count; ++i) {
      HostBuffer acc(dtype, 1);
      acc.set(0, inputs[static_cast<size_t>((c + 1) % size)].get(i));
      for (int k = 2; k <= size; ++k) acc.set(0, acc.get(0) + inputs[static_cast<size_t>((c + k) % size)].get(i));
      out.set(i, acc.get(0));
    }
  }
  return out;
}

}  // namespace

TEST_CASE("all_reduce is bitwise identical to reduce_scatter followed by all_gather on random data") {
  for (DType dtype : {DType::f32, DType::bf16}) {
    for (int size : {2, 3, 4}) {
      // Divisible counts compare directly; for an uneven count, reduce_scatter runs over the buffer
      // padded to size*ceil(n/size) and the first n elements are compared.
      for (int64_t count : {int64_t{4096} * size, int64_t{100003}}) {
        INFO(dtype_name(dtype) << ", world size " << size << ", count " << count);
        auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
          const int64_t q = (count + size - 1) / size;
          HostBuffer all = random_input(dtype, count, rank, 7);
          HostBuffer padded(dtype, q * size);  // zeros past count
          for (int64_t i = 0; i < count; ++i) padded.set(i, all.get(i));
          comm->all_reduce(all.data(), count, dtype, ReduceOp::sum)->wait();
          HostBuffer mine(dtype, q), gathered(dtype, q * size);
          comm->reduce_scatter(padded.data(), mine.data(), q, dtype, ReduceOp::sum)->wait();
          comm->all_gather(mine.data(), gathered.data(), q, dtype)->wait();
          for (int64_t i = 0; i < count; ++i)
            if (std::bit_cast<uint32_t>(all.get(i)) != std::bit_cast<uint32_t>(gathered.get(i)))
              expect(false, "element " + std::to_string(i) + ": all_reduce " + std::to_string(all.get(i)) +
                                ", reduce_scatter+all_gather " + std::to_string(gathered.get(i)));
        });
        CHECK(ds::test::rank_failures(messages) == "");
      }
    }
  }
}

TEST_CASE("all_reduce adds each chunk in the documented ring order, rounding to the dtype after every hop") {
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    for (int size : {2, 3, 4}) {
      const int64_t count = 10007;
      INFO(dtype_name(dtype) << ", world size " << size);
      const HostBuffer want = ring_order_sum(dtype, count, size, 11);
      ds::test::WorldOptions options;
      options.segment_bytes = 256;  // many segments and lanes in flight
      auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
        HostBuffer buf = random_input(dtype, count, rank, 11);
        comm->all_reduce(buf.data(), count, dtype, ReduceOp::sum)->wait();
        expect(buf.same_bits(want), "all_reduce differs from the documented ring order");
      }, options);
      CHECK(ds::test::rank_failures(messages) == "");
    }
  }
}

TEST_CASE("all_reduce and reduce_scatter give the same bits run to run, whatever the segment size and depth") {
  const int size = 3;
  const int64_t count = 300001;
  const int64_t q = (count + size - 1) / size;
  struct Result {
    std::vector<HostBuffer> all_reduced, scattered;
  };
  auto run = [&](int64_t segment_bytes, int depth) {
    Result result;
    for (int r = 0; r < size; ++r) {
      result.all_reduced.emplace_back(DType::f32, count);
      result.scattered.emplace_back(DType::bf16, q);
    }
    ds::test::WorldOptions options;
    options.segment_bytes = segment_bytes;
    options.pipeline_depth = depth;
    auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
      HostBuffer& all = result.all_reduced[static_cast<size_t>(rank)];
      all = random_input(DType::f32, count, rank, 3);
      comm->all_reduce(all.data(), count, DType::f32, ReduceOp::sum)->wait();
      HostBuffer send = random_input(DType::bf16, q * size, rank, 4);
      comm->reduce_scatter(send.data(), result.scattered[static_cast<size_t>(rank)].data(), q, DType::bf16,
                           ReduceOp::sum)->wait();
    }, options);
    REQUIRE(ds::test::rank_failures(messages) == "");
    return result;
  };
  const Result first = run(1 << 20, 4);
  for (auto [segment_bytes, depth] : {std::pair<int64_t, int>{1 << 20, 4}, {4096, 1}, {1000, 16}}) {
    INFO("segment_bytes " << segment_bytes << ", depth " << depth);
    const Result again = run(segment_bytes, depth);
    for (int r = 0; r < size; ++r) {
      CHECK(again.all_reduced[static_cast<size_t>(r)].same_bits(first.all_reduced[static_cast<size_t>(r)]));
      CHECK(again.scattered[static_cast<size_t>(r)].same_bits(first.scattered[static_cast<size_t>(r)]));
    }
    // Every rank ends with the same all_reduce result.
    CHECK(again.all_reduced[1].same_bits(again.all_reduced[0]));
    CHECK(again.all_reduced[2].same_bits(again.all_reduced[0]));
  }
}

TEST_CASE("ops queued before any wait run in call order and all complete with the right results") {
  const int size = 3;
  const int64_t n = 50000;
  auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
    std::vector<float> a(n, static_cast<float>(rank + 1));  // all_reduced twice: 6, then 18
    std::vector<float> rs_send(n * size), rs_recv(n);
    for (int64_t i = 0; i < n * size; ++i) rs_send[static_cast<size_t>(i)] = static_cast<float>(i % 7);
    std::vector<float> ag_recv(n * size), ag_send(n, static_cast<float>(10 * rank));
    std::vector<float> bc(n, rank == 2 ? 42.0f : -1.0f);
    std::vector<std::shared_ptr<Work>> works;
    works.push_back(comm->all_reduce(a.data(), n, DType::f32, ReduceOp::sum));
    works.push_back(comm->reduce_scatter(rs_send.data(), rs_recv.data(), n, DType::f32, ReduceOp::sum));
    works.push_back(comm->all_reduce(a.data(), n, DType::f32, ReduceOp::sum));  // uses the first one's result
    works.push_back(comm->all_gather(ag_send.data(), ag_recv.data(), n, DType::f32));
    works.push_back(comm->broadcast(bc.data(), n, DType::f32, 2));
    for (auto it = works.rbegin(); it != works.rend(); ++it) (*it)->wait();  // newest first
    for (auto& w : works) expect(w->done(), "a waited op is not done()");
    for (int64_t i = 0; i < n; ++i) {
      expect(a[static_cast<size_t>(i)] == 18.0f, "all_reduce twice: " + std::to_string(a[static_cast<size_t>(i)]));
      expect(rs_recv[static_cast<size_t>(i)] == size * static_cast<float>((rank * n + i) % 7), "reduce_scatter");
      expect(bc[static_cast<size_t>(i)] == 42.0f, "broadcast");
    }
    for (int64_t i = 0; i < n * size; ++i)
      expect(ag_recv[static_cast<size_t>(i)] == static_cast<float>(10 * (i / n)), "all_gather");
  });
  CHECK(ds::test::rank_failures(messages) == "");
}
