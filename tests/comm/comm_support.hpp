// Test support for the comm suite: host buffers of any dtype, and worlds of ranks run as threads of
// this process, each rank with its own GlooComm over one MemoryStore and real TCP on loopback.
// Catch2's assertions are not thread-safe, so rank threads report problems by throwing (expect());
// run_world() hands the messages back to the test's thread, which asserts on them.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/comm.hpp"
#include "comm/comm_gloo.hpp"
#include "base/dtype.hpp"
#include "store/memory_store.hpp"

namespace ds::test {

// count elements of one dtype in host memory, read and written as floats.
class HostBuffer {
 public:
  HostBuffer(DType dtype, int64_t count) : m_dtype(dtype), m_count(count), m_bytes(static_cast<size_t>(count) * dtype_size(dtype)) {}
  DType dtype() const { return m_dtype; }
  int64_t count() const { return m_count; }
  void* data() { return m_bytes.data(); }
  const void* data() const { return m_bytes.data(); }
  void* at(int64_t i) { return m_bytes.data() + i * static_cast<int64_t>(dtype_size(m_dtype)); }
  void set(int64_t i, float value);  // rounds to the dtype
  float get(int64_t i) const;
  bool same_bits(const HostBuffer& other) const { return m_dtype == other.m_dtype && m_bytes == other.m_bytes; }

 private:
  DType m_dtype;
  int64_t m_count;
  std::vector<std::byte> m_bytes;
};

// Throws std::runtime_error(message) unless ok: how rank threads report a wrong result.
void expect(bool ok, const std::string& message);
// Checks every element of buf against want(i), exactly; throws naming the first difference.
void expect_values(const HostBuffer& buf, const std::function<float(int64_t)>& want, const std::string& what);

struct WorldOptions {
  std::chrono::milliseconds timeout{20'000};
  int64_t segment_bytes = 1 << 20;
  int pipeline_depth = 4;
};

// Runs body(rank, comm) on `size` threads, each with a fresh GlooComm of a new world (own store and
// prefix). body may destroy its comm (comm.reset()). Returns one message per rank: empty when body
// returned, else what it threw (a communicator that cannot be created counts as thrown).
using RankBody = std::function<void(int rank, std::unique_ptr<comm::Comm>& comm)>;
std::vector<std::string> run_world(int size, const RankBody& body, const WorldOptions& options = {});

// All messages joined, one "rank N: ..." line per non-empty one; empty when all were.
std::string rank_failures(const std::vector<std::string>& messages);

}  // namespace ds::test
