// Collective communication between the ranks of one job: the interface the ZeRO engine is written
// against. GlooComm (comm_gloo.hpp) implements it on host memory over TCP, SingleRankComm
// (comm_single.hpp) for a world of one, NcclComm (later) on GPU buffers.
//
// Note [comm ordering]. Every op is queued on the communicator's own ordered queue (its "stream": a
// dedicated thread for Gloo, a CUDA stream for NCCL) and returns at once with a Work handle; ops run
// one at a time in call order, so an op may use the result of the op queued before it without waiting
// in between. All ranks must issue the same ops (same kind, count, dtype, reduce op, root) in the same
// order: the i-th op of every rank forms one collective. GlooComm checks this at the start of every op
// and fails it with a CommError naming both ops (NCCL would hang or corrupt memory instead).
//
// Note [comm buffers]. Buffers are memory of the communicator's device (host memory for GlooComm and
// SingleRankComm). From the call until wait() returns (or done() returns true) they must stay valid
// and the caller must neither write them nor read the output buffer. In-place forms are allowed
// exactly as in NCCL: reduce_scatter with recv == send + rank()*recv_count, all_gather with
// send == recv + rank()*send_count; any other overlap of send and recv is a bug (DS_CHECK).
//
// Note [ring chunks]. An op over a buffer of n elements cuts it into size() chunks of
// q = ceil(n / size()) elements: chunk c = [min(c*q, n), min((c+1)*q, n)) (comm_chunk below). When
// size() divides n these are size() equal chunks, exactly reduce_scatter's layout; otherwise the last
// chunks are shorter, and some may be empty (n = 5, size 4: 2, 2, 1, 0). Every element of chunk c is
// reduced in an order that depends only on (c, size()) (GlooComm documents its order in
// comm_gloo.hpp), never on timing, so results are bitwise reproducible, and all_reduce reduces chunk c
// exactly as reduce_scatter reduces its chunk c: all_reduce(buf) equals
// all_gather(reduce_scatter(buf)) bit for bit (over n padded up to size()*q when size() does not
// divide n). The ZeRO engine relies on this to make stage 2 bitwise equal to stage 0.
//
// Note [comm precision]. Reductions load each operand as fp32, combine in fp32 and store the result
// in the buffer's dtype (round to nearest even) after every step, as NCCL does for bf16 and fp16.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/dtype.hpp"
#include "base/tensor.hpp"

namespace ds::comm {

// How all_reduce and reduce_scatter combine elements. sum works for every dtype; max and min too
// (computed in fp32, so exact); max and min propagate NaN, so a NaN anywhere shows in the result
// (what overflow checks want).
enum class ReduceOp : uint8_t { sum, max, min };
const char* reduce_op_name(ReduceOp op);

// Elements [begin, begin + count) of chunk `index` of an n-element buffer split among `size` ranks
// (Note [ring chunks]).
struct ChunkRange {
  int64_t begin = 0;
  int64_t count = 0;
};
ChunkRange comm_chunk(int64_t n, int size, int index);

// The completion of one queued op.
class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the op finished. Throws CommError if it failed; every call rethrows the same error.
  virtual void wait() = 0;
  // True once the op finished, successfully or not. Never blocks.
  virtual bool done() = 0;
};

// A communicator: one rank's handle on a group of size() ranks. The front door below validates the
// arguments (DS_CHECK: a bad count, root or overlap is a bug in the caller) and hands the op to the
// implementation. Calls are made from one thread at a time (the rank's training thread); Work
// handles may be waited on from any thread. Every op throws CommError at once, without queueing,
// when an earlier op of this communicator failed: a failed communicator stays failed. Destroying a
// communicator aborts the ops still queued or running (their wait() throws CommError): wait first.
class Comm {
 public:
  virtual ~Comm() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "gloo comm 'job/dp' rank 2 of 4": for messages and logs.
  virtual std::string describe() const = 0;

  // buf holds count elements; afterwards every rank's buf holds the reduction over ranks.
  std::shared_ptr<Work> all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op);
  // send holds size()*recv_count elements, rank-major (chunk c is [c*recv_count, (c+1)*recv_count));
  // afterwards recv (recv_count elements) holds the reduction over ranks of chunk rank().
  std::shared_ptr<Work> reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype, ReduceOp op);
  // recv holds size()*send_count elements; afterwards its chunk c is rank c's send.
  std::shared_ptr<Work> all_gather(const void* send, void* recv, int64_t send_count, DType dtype);
  // Afterwards every rank's buf holds root's buf.
  std::shared_ptr<Work> broadcast(void* buf, int64_t count, DType dtype, int root);
  // Blocks until every rank called barrier() (and this rank's earlier ops finished). Throws CommError.
  void barrier();

 protected:
  // Implementations: queue the op (arguments already validated) and return its Work.
  virtual std::shared_ptr<Work> start_all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op) = 0;
  virtual std::shared_ptr<Work> start_reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                                     ReduceOp op) = 0;
  virtual std::shared_ptr<Work> start_all_gather(const void* send, void* recv, int64_t send_count, DType dtype) = 0;
  virtual std::shared_ptr<Work> start_broadcast(void* buf, int64_t count, DType dtype, int root) = 0;
  virtual std::shared_ptr<Work> start_barrier() = 0;
};

// Blocking wrappers: issue the op and wait for it; throw CommError. The views carry dtype and count;
// send and recv must have the same dtype.
void all_reduce(Comm& comm, const TensorRef& buf, ReduceOp op = ReduceOp::sum);
void reduce_scatter(Comm& comm, const TensorRef& send, const TensorRef& recv, ReduceOp op = ReduceOp::sum);
void all_gather(Comm& comm, const TensorRef& send, const TensorRef& recv);
void broadcast(Comm& comm, const TensorRef& buf, int root);

}  // namespace ds::comm
