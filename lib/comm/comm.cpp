#include "comm/comm.hpp"

#include <algorithm>
#include <cstdint>

#include "base/check.hpp"
#include "comm/comm_work.hpp"

namespace ds::comm {
namespace {

// True when the byte ranges [a, a + a_bytes) and [b, b + b_bytes) share a byte.
bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  const auto pa = reinterpret_cast<uintptr_t>(a);
  const auto pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

const std::byte* at(const void* p, int64_t elements, DType dtype) {
  return static_cast<const std::byte*>(p) + elements * static_cast<int64_t>(dtype_size(dtype));
}

}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "?";
}

ChunkRange comm_chunk(int64_t n, int size, int index) {
  DS_CHECK(n >= 0 && size >= 1 && index >= 0 && index < size, "comm_chunk(n=", n, ", size=", size, ", index=", index, ")");
  const int64_t q = (n + size - 1) / size;
  const int64_t begin = std::min(static_cast<int64_t>(index) * q, n);
  const int64_t end = std::min(static_cast<int64_t>(index + 1) * q, n);
  return {begin, end - begin};
}

// ---- the validating front door -----------------------------------------------------------------

std::shared_ptr<Work> Comm::all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op) {
  DS_CHECK(count >= 0, "all_reduce: count ", count, " must be >= 0");
  DS_CHECK(buf != nullptr || count == 0, "all_reduce: null buffer for ", count, " elements");
  return start_all_reduce(buf, count, dtype, op);
}

std::shared_ptr<Work> Comm::reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype, ReduceOp op) {
  DS_CHECK(recv_count >= 0, "reduce_scatter: recv_count ", recv_count, " must be >= 0");
  DS_CHECK((send != nullptr && recv != nullptr) || recv_count == 0, "reduce_scatter: null buffer for recv_count ",
           recv_count);
  const size_t chunk_bytes = static_cast<size_t>(recv_count) * dtype_size(dtype);
  const bool in_place = recv == at(send, static_cast<int64_t>(rank()) * recv_count, dtype);
  DS_CHECK(in_place || !overlaps(send, chunk_bytes * size(), recv, chunk_bytes),
           "reduce_scatter: recv overlaps send but is not the in-place form recv == send + rank()*recv_count (rank ",
           rank(), ", recv_count ", recv_count, ")");
  return start_reduce_scatter(send, recv, recv_count, dtype, op);
}

std::shared_ptr<Work> Comm::all_gather(const void* send, void* recv, int64_t send_count, DType dtype) {
  DS_CHECK(send_count >= 0, "all_gather: send_count ", send_count, " must be >= 0");
  DS_CHECK((send != nullptr && recv != nullptr) || send_count == 0, "all_gather: null buffer for send_count ",
           send_count);
  const size_t chunk_bytes = static_cast<size_t>(send_count) * dtype_size(dtype);
  const bool in_place = send == at(recv, static_cast<int64_t>(rank()) * send_count, dtype);
  DS_CHECK(in_place || !overlaps(send, chunk_bytes, recv, chunk_bytes * size()),
           "all_gather: send overlaps recv but is not the in-place form send == recv + rank()*send_count (rank ",
           rank(), ", send_count ", send_count, ")");
  return start_all_gather(send, recv, send_count, dtype);
}

std::shared_ptr<Work> Comm::broadcast(void* buf, int64_t count, DType dtype, int root) {
  DS_CHECK(count >= 0, "broadcast: count ", count, " must be >= 0");
  DS_CHECK(buf != nullptr || count == 0, "broadcast: null buffer for ", count, " elements");
  DS_CHECK(root >= 0 && root < size(), "broadcast: root ", root, " is not a rank of this communicator (0..",
           size() - 1, ")");
  return start_broadcast(buf, count, dtype, root);
}

void Comm::barrier() { start_barrier()->wait(); }

// ---- blocking wrappers -------------------------------------------------------------------------

void all_reduce(Comm& comm, const TensorRef& buf, ReduceOp op) {
  comm.all_reduce(buf.data, buf.numel, buf.dtype, op)->wait();
}

void reduce_scatter(Comm& comm, const TensorRef& send, const TensorRef& recv, ReduceOp op) {
  DS_CHECK(send.dtype == recv.dtype, "reduce_scatter: send is ", dtype_name(send.dtype), ", recv is ",
           dtype_name(recv.dtype));
  DS_CHECK(send.numel == recv.numel * comm.size(), "reduce_scatter: send has ", send.numel, " elements, needs size() ",
           comm.size(), " x recv's ", recv.numel);
  comm.reduce_scatter(send.data, recv.data, recv.numel, recv.dtype, op)->wait();
}

void all_gather(Comm& comm, const TensorRef& send, const TensorRef& recv) {
  DS_CHECK(send.dtype == recv.dtype, "all_gather: send is ", dtype_name(send.dtype), ", recv is ",
           dtype_name(recv.dtype));
  DS_CHECK(recv.numel == send.numel * comm.size(), "all_gather: recv has ", recv.numel, " elements, needs size() ",
           comm.size(), " x send's ", send.numel);
  comm.all_gather(send.data, recv.data, send.numel, send.dtype)->wait();
}

void broadcast(Comm& comm, const TensorRef& buf, int root) {
  comm.broadcast(buf.data, buf.numel, buf.dtype, root)->wait();
}

// ---- CommWork ----------------------------------------------------------------------------------

void CommWork::wait() {
  std::unique_lock lock(m_mutex);
  m_done_cv.wait(lock, [&] { return m_done; });
  if (m_error) std::rethrow_exception(m_error);
}

bool CommWork::done() {
  std::lock_guard lock(m_mutex);
  return m_done;
}

void CommWork::finish(std::exception_ptr error) {
  {
    std::lock_guard lock(m_mutex);
    DS_CHECK(!m_done, "a comm op was finished twice");
    m_done = true;
    m_error = std::move(error);
  }
  m_done_cv.notify_all();
}

std::shared_ptr<Work> CommWork::finished() {
  auto work = std::make_shared<CommWork>();
  work->finish(nullptr);
  return work;
}

}  // namespace ds::comm
