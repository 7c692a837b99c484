// A communicator for a world of one rank: single-process runs need no Gloo and no store.
// Every op completes on the calling thread before it returns (its Work is already done): all_reduce
// and broadcast leave the buffer as it is, reduce_scatter and all_gather copy send to recv (nothing
// when in place). Bitwise what a one-rank GlooComm or NCCL communicator produces.
#pragma once

#include <memory>

#include "comm/comm.hpp"

namespace ds::comm {

class SingleRankComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string describe() const override { return "single-rank comm"; }

 protected:
  std::shared_ptr<Work> start_all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op) override;
  std::shared_ptr<Work> start_reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                             ReduceOp op) override;
  std::shared_ptr<Work> start_all_gather(const void* send, void* recv, int64_t send_count, DType dtype) override;
  std::shared_ptr<Work> start_broadcast(void* buf, int64_t count, DType dtype, int root) override;
  std::shared_ptr<Work> start_barrier() override;
};

std::unique_ptr<Comm> make_single_rank_comm();

}  // namespace ds::comm
