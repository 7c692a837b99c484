// Every collective on exactly representable inputs (small integers, exact in fp32, bf16 and fp16
// even after summing over four ranks), so results are compared exactly: world sizes 1-4, counts 0,
// 1, not divisible by the world size, and a few MiB; all three dtypes; with the default segments and
// with tiny ones that push even small buffers through many segments and pipeline lanes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "comm/comm_support.hpp"

using namespace ds;
using namespace ds::comm;
using namespace ds::store;
using ds::test::expect_values;
using ds::test::HostBuffer;

namespace {

// Rank r's input at element i: an integer in [-9, 9].
float input(int rank, int64_t i) { return static_cast<float>((i * 7 + rank * 13) % 19 - 9); }

float reduced(ReduceOp op, int size, int64_t i) {
  float acc = input(0, i);
  for (int r = 1; r < size; ++r) {
    const float x = input(r, i);
    acc = op == ReduceOp::sum ? acc + x : op == ReduceOp::max ? std::max(acc, x) : std::min(acc, x);
  }
  return acc;
}

const DType k_dtypes[] = {DType::f32, DType::bf16, DType::f16};
const ReduceOp k_ops[] = {ReduceOp::sum, ReduceOp::max, ReduceOp::min};

// Counts to try: 0, 1, not divisible by 2, 3 or 4, and (unless small) a few MiB.
std::vector<int64_t> counts(bool large) {
  std::vector<int64_t> out = {0, 1, 5, 7, 131};
  if (large) out.push_back((1 << 20) + 3);  // 4 MiB of fp32
  return out;
}

std::string label(const char* op, int size, int64_t count, DType dtype) {
  return std::string(op) + " size " + std::to_string(size) + " count " + std::to_string(count) + " " + dtype_name(dtype);
}

struct Config {
  const char* name;
  ds::test::WorldOptions options;
  bool large;
};

std::vector<Config> configs() {
  ds::test::WorldOptions tiny;
  tiny.segment_bytes = 12;  // 3 fp32 or 6 bf16 elements per segment
  tiny.pipeline_depth = 3;
  return {{"default segments", {}, true}, {"12-byte segments, 3 lanes", tiny, false}};
}

}  // namespace

TEST_CASE("all_reduce sums, maxes and mins exactly for every dtype, world size 1-4 and uneven counts") {
  for (const auto& config : configs()) {
    for (int size = 1; size <= 4; ++size) {
      INFO(config.name << ", world size " << size);
      auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
        for (int64_t count : counts(config.large))
          for (DType dtype : k_dtypes)
            for (ReduceOp op : k_ops) {
              HostBuffer buf(dtype, count);
              for (int64_t i = 0; i < count; ++i) buf.set(i, input(rank, i));
              comm->all_reduce(buf.data(), count, dtype, op)->wait();
              expect_values(buf, [&](int64_t i) { return reduced(op, size, i); },
                            label("all_reduce", size, count, dtype) + " " + reduce_op_name(op));
            }
      }, config.options);
      CHECK(ds::test::rank_failures(messages) == "");
    }
  }
}

TEST_CASE("reduce_scatter leaves each rank the exact reduction of its chunk, out of place and in place") {
  for (const auto& config : configs()) {
    for (int size = 1; size <= 4; ++size) {
      INFO(config.name << ", world size " << size);
      auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
        for (int64_t recv_count : counts(config.large)) {
          if (recv_count > 1000) recv_count /= size;  // keep the send buffer a few MiB
          const int64_t n = recv_count * size;
          for (DType dtype : k_dtypes)
            for (ReduceOp op : k_ops) {
              HostBuffer send(dtype, n), recv(dtype, recv_count);
              for (int64_t i = 0; i < n; ++i) send.set(i, input(rank, i));
              comm->reduce_scatter(send.data(), recv.data(), recv_count, dtype, op)->wait();
              const int64_t base = rank * recv_count;
              auto want = [&](int64_t i) { return reduced(op, size, base + i); };
              expect_values(recv, want, label("reduce_scatter", size, recv_count, dtype) + " " + reduce_op_name(op));
              // In place: the result lands in this rank's own chunk of send.
              comm->reduce_scatter(send.data(), send.at(base), recv_count, dtype, op)->wait();
              HostBuffer mine(dtype, recv_count);
              std::memcpy(mine.data(), send.at(base), static_cast<size_t>(recv_count) * dtype_size(dtype));
              expect_values(mine, want, label("in-place reduce_scatter", size, recv_count, dtype) + " " +
                                            reduce_op_name(op));
            }
        }
      }, config.options);
      CHECK(ds::test::rank_failures(messages) == "");
    }
  }
}

TEST_CASE("all_gather gives every rank every rank's chunk in rank order, out of place and in place") {
  for (const auto& config : configs()) {
    for (int size = 1; size <= 4; ++size) {
      INFO(config.name << ", world size " << size);
      auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
        for (int64_t send_count : counts(config.large)) {
          if (send_count > 1000) send_count /= size;
          const int64_t n = send_count * size;
          for (DType dtype : k_dtypes) {
            HostBuffer send(dtype, send_count), recv(dtype, n);
            for (int64_t i = 0; i < send_count; ++i) send.set(i, input(rank, i));
            auto want = [&](int64_t i) { return input(static_cast<int>(i / send_count), i % send_count); };
            comm->all_gather(send.data(), recv.data(), send_count, dtype)->wait();
            expect_values(recv, want, label("all_gather", size, send_count, dtype));
            // In place: this rank's chunk already sits in recv.
            HostBuffer inplace(dtype, n);
            for (int64_t i = 0; i < send_count; ++i) inplace.set(rank * send_count + i, input(rank, i));
            comm->all_gather(inplace.at(rank * send_count), inplace.data(), send_count, dtype)->wait();
            expect_values(inplace, want, label("in-place all_gather", size, send_count, dtype));
          }
        }
      }, config.options);
      CHECK(ds::test::rank_failures(messages) == "");
    }
  }
}

TEST_CASE("broadcast copies the root's buffer to every rank, from every root") {
  for (const auto& config : configs()) {
    for (int size = 1; size <= 4; ++size) {
      INFO(config.name << ", world size " << size);
      auto messages = ds::test::run_world(size, [&](int rank, std::unique_ptr<Comm>& comm) {
        for (int64_t count : counts(config.large))
          for (DType dtype : k_dtypes)
            for (int root = 0; root < size; ++root) {
              HostBuffer buf(dtype, count);
              for (int64_t i = 0; i < count; ++i) buf.set(i, input(rank, i));
              comm->broadcast(buf.data(), count, dtype, root)->wait();
              expect_values(buf, [&](int64_t i) { return input(root, i); },
                            label("broadcast", size, count, dtype) + " root " + std::to_string(root));
            }
      }, config.options);
      CHECK(ds::test::rank_failures(messages) == "");
    }
  }
}

TEST_CASE("no rank leaves a barrier before every rank has entered it") {
  const int size = 4;
  std::atomic<int> entered{0};
  auto messages = ds::test::run_world(size, [&](int, std::unique_ptr<Comm>& comm) {
    for (int round = 1; round <= 3; ++round) {
      entered++;
      comm->barrier();
      ds::test::expect(entered.load() >= round * size, "left barrier " + std::to_string(round) + " with only " +
                                                           std::to_string(entered.load()) + " entries");
      comm->barrier();  // nobody starts the next round before everyone checked this one
    }
  });
  CHECK(ds::test::rank_failures(messages) == "");
}
