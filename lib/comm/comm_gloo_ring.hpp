// The ring algorithms behind GlooComm (comm_gloo.hpp documents their order and guarantees), and
// RingLink, their view of Gloo's transport. Internal to GlooComm: everything here runs on the
// communicator's own thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gloo/context.h>
#include <gloo/transport/unbound_buffer.h>

#include "comm/comm.hpp"

namespace ds::comm::gloo_ring {

// A transfer failed; thrown by RingLink, turned into a CommError by GlooComm.
struct PeerFailure {
  enum class Kind { closed, reset, timeout, other };
  Kind kind = Kind::other;
  int peer = -1;
  bool receiving = false;  // waiting for data from peer (else: sending to it)
  std::string detail;      // Gloo's own message
};

// The communicator was destroyed while the op ran (Interrupter::abort).
struct Aborted {};

// Lets the destroying thread interrupt the op the communication thread is waiting in.
class Interrupter {
 public:
  // Makes the current wait, and every later one, throw Aborted. Any thread.
  void abort();

  // RingLink brackets each wait with these. begin_wait throws Aborted once abort() was called.
  void begin_wait(gloo::transport::UnboundBuffer* buffer, bool receiving);
  void end_wait();

 private:
  std::mutex m_mutex;
  bool m_aborted = false;
  gloo::transport::UnboundBuffer* m_current = nullptr;
  bool m_current_receiving = false;
};

// Buffers of completed transfers, destroyed later rather than at once. Destroying a Gloo unbound
// buffer spins until Gloo's event loop thread has let go of it, which it does only after waking the
// waiter: destroying it right after the wait spins until the loop thread runs again, a whole
// scheduler tick when that thread was preempted (measured: 4 ms per transfer on a busy 2-core
// machine). Keeping the last k_keep buffers moves that wait to a time when it is long over.
class RetiredBuffers {
 public:
  static constexpr size_t k_keep = 64;
  void retire(std::unique_ptr<gloo::transport::UnboundBuffer> buffer);
  void clear() { m_buffers.clear(); }

 private:
  std::deque<std::unique_ptr<gloo::transport::UnboundBuffer>> m_buffers;
};

// One op's sends and receives. Channels separate the independent streams of one op (pipeline lanes,
// phases); within a channel, transfers between two ranks match in posting order.
class RingLink {
 public:
  struct Transfer {
    std::unique_ptr<gloo::transport::UnboundBuffer> buffer;  // empty: nothing pending
    int peer = -1;
    bool receiving = false;
  };

  // context is null for a world of one (no transfers happen then). Completed transfers' buffers go
  // to retired.
  RingLink(gloo::Context* context, int rank, int size, Interrupter& interrupter, RetiredBuffers& retired,
           uint64_t seq, std::chrono::milliseconds timeout);

  int rank() const { return m_rank; }
  int size() const { return m_size; }
  int left() const { return (m_rank + m_size - 1) % m_size; }
  int right() const { return (m_rank + 1) % m_size; }

  // Post a transfer; returns at once. data must stay valid (and, for send, unchanged) until wait().
  Transfer send(int peer, int channel, const void* data, size_t bytes);
  Transfer recv(int peer, int channel, void* data, size_t bytes);
  // Blocks until t completed (at most the timeout), then empties it; no-op when t is empty.
  // Throws PeerFailure or Aborted.
  void wait(Transfer& t);

 private:
  uint64_t slot(int channel) const;
  PeerFailure failure(int peer, bool receiving, const std::string& what) const;

  gloo::Context* m_context;
  int m_rank;
  int m_size;
  Interrupter& m_interrupter;
  RetiredBuffers& m_retired;
  uint64_t m_seq;
  std::chrono::milliseconds m_timeout;
};

constexpr int k_max_lanes = 16;
constexpr int k_header_channel = 255;

// How the rings pipeline: segment size and lanes, and the communicator's reusable staging memory.
struct RingConfig {
  int64_t segment_bytes = 1 << 20;
  int lanes = 4;                     // 1..k_max_lanes
  std::vector<std::byte>* staging = nullptr;
};

// The collectives (arguments validated by Comm's front door). Block until done.
void all_reduce(RingLink& link, const RingConfig& config, void* buf, int64_t count, DType dtype, ReduceOp op);
void reduce_scatter(RingLink& link, const RingConfig& config, const void* send, void* recv, int64_t recv_count,
                    DType dtype, ReduceOp op);
void all_gather(RingLink& link, const RingConfig& config, const void* send, void* recv, int64_t send_count,
                DType dtype);
void broadcast(RingLink& link, const RingConfig& config, void* buf, int64_t count, DType dtype, int root);

}  // namespace ds::comm::gloo_ring
