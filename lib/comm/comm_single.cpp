#include "comm/comm_single.hpp"

#include <cstring>

#include "comm/comm_work.hpp"
#include "device/device.hpp"

namespace ds::comm {
namespace {

void copy_if_distinct(const void* send, void* recv, int64_t count, DType dtype) {
  // One rank's gather or reduce-scatter is a copy; its buffers may be GPU memory (a one-GPU run).
  if (send != recv && count > 0) device::copy_bytes_anywhere(recv, send, static_cast<size_t>(count) * dtype_size(dtype));
}

}  // namespace

std::shared_ptr<Work> SingleRankComm::start_all_reduce(void*, int64_t, DType, ReduceOp) {
  return CommWork::finished();
}

std::shared_ptr<Work> SingleRankComm::start_reduce_scatter(const void* send, void* recv, int64_t recv_count,
                                                           DType dtype, ReduceOp) {
  copy_if_distinct(send, recv, recv_count, dtype);
  return CommWork::finished();
}

std::shared_ptr<Work> SingleRankComm::start_all_gather(const void* send, void* recv, int64_t send_count,
                                                       DType dtype) {
  copy_if_distinct(send, recv, send_count, dtype);
  return CommWork::finished();
}

std::shared_ptr<Work> SingleRankComm::start_broadcast(void*, int64_t, DType, int) { return CommWork::finished(); }

std::shared_ptr<Work> SingleRankComm::start_barrier() { return CommWork::finished(); }

std::unique_ptr<Comm> make_single_rank_comm() { return std::make_unique<SingleRankComm>(); }

}  // namespace ds::comm
