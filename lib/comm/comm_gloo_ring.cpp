#include "comm/comm_gloo_ring.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "base/check.hpp"
#include "comm/comm_reduce.hpp"

namespace ds::comm::gloo_ring {
namespace {

// Channel numbers of one op: each pipeline lane of each phase has its own.
constexpr int k_reduce_scatter_channel = 0;  // + lane
constexpr int k_all_gather_channel = 32;     // + lane
constexpr int k_broadcast_channel = 64;      // + lane
static_assert(k_max_lanes <= 32 && k_broadcast_channel + k_max_lanes < k_header_channel);

int mod(int a, int n) { return ((a % n) + n) % n; }

bool contains(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

// The segments of a ring over n elements: chunk c (Note [ring chunks]) is cut into segments of seg
// elements; segment j of chunk c is elements [c.begin + j*seg, c.begin + min((j+1)*seg, c.count)).
class Segments {
 public:
  Segments(int64_t n, int size, int64_t seg) : m_n(n), m_size(size), m_seg(seg) {}

  // Segment j of chunk c; count 0 when the chunk has no segment j.
  ChunkRange of(int chunk, int64_t j) const {
    const ChunkRange c = comm_chunk(m_n, m_size, chunk);
    const int64_t offset = j * m_seg;
    return {c.begin + offset, std::clamp<int64_t>(c.count - offset, 0, m_seg)};
  }
  // Segments of the largest chunk (chunk 0).
  int64_t per_chunk() const {
    const int64_t q = comm_chunk(m_n, m_size, 0).count;
    return (q + m_seg - 1) / m_seg;
  }

 private:
  int64_t m_n;
  int m_size;
  int64_t m_seg;
};

int64_t segment_elements(const RingConfig& config, DType dtype) {
  return std::max<int64_t>(1, config.segment_bytes / static_cast<int64_t>(dtype_size(dtype)));
}

int lane_count(const RingConfig& config, int64_t segments) {
  return static_cast<int>(std::clamp<int64_t>(segments, 1, std::clamp(config.lanes, 1, k_max_lanes)));
}

std::byte* staging(const RingConfig& config, size_t bytes) {
  DS_CHECK(config.staging != nullptr, "ring staging buffer missing");
  if (config.staging->size() < bytes) config.staging->resize(bytes);
  return config.staging->data();
}

// One pipeline lane: it carries segments lane, lane + lanes, lane + 2*lanes, ... each through all
// steps of a ring, one step per visit.
struct Lane {
  int64_t segment = 0;
  int step = 0;
  bool active = false;
  RingLink::Transfer send;
  RingLink::Transfer recv;
};

// Round-robin over the lanes: post(lane) starts the lane's current (segment, step), finish(lane)
// completes it. Each rank visits the lanes in the same order and each lane's transfers are posted in
// (segment, step) order, so the two ends of every channel agree on what each message is. Returns
// once every transfer posted has completed.
template <typename Post, typename Finish>
void run_lanes(RingLink& link, int64_t segments, int lanes, int steps, Post post, Finish finish) {
  std::array<Lane, k_max_lanes> lane{};
  for (int d = 0; d < lanes; ++d) {
    lane[d].segment = d;
    lane[d].active = d < segments;
    if (lane[d].active) post(lane[d], d);
  }
  for (bool any = true; any;) {
    any = false;
    for (int d = 0; d < lanes; ++d) {
      Lane& l = lane[d];
      if (!l.active) continue;
      finish(l, d);
      if (++l.step == steps) {
        l.step = 0;
        l.segment += lanes;
      }
      l.active = l.segment < segments;
      if (l.active) {
        post(l, d);
        any = true;
      }
    }
  }
  for (int d = 0; d < lanes; ++d) {  // transfers a finish() posted last (broadcast's forwards)
    link.wait(lane[d].recv);
    link.wait(lane[d].send);
  }
}

// The reduce-scatter ring (comm_gloo.hpp): at step s rank r sends chunk r-1-s, receives chunk r-2-s
// and combines it with its own; after size-1 steps it holds the result for chunk r.
struct ReduceScatterArgs {
  int64_t n = 0;                  // elements in the whole buffer
  const std::byte* own = nullptr; // this rank's contributions (n elements)
  std::byte* accumulate = nullptr;  // == own to combine in place there (all_reduce); null: use staging
  std::byte* out = nullptr;         // result for chunk rank() (its count elements); may alias own's chunk
  DType dtype = DType::f32;
  ReduceOp op = ReduceOp::sum;
};

void reduce_scatter_ring(RingLink& link, const RingConfig& config, const ReduceScatterArgs& a) {
  const int n = link.size();
  const int r = link.rank();
  const size_t es = dtype_size(a.dtype);
  if (n == 1) {
    if (a.out != a.own && a.n > 0) std::memcpy(a.out, a.own, static_cast<size_t>(a.n) * es);
    return;
  }
  const int64_t seg = segment_elements(config, a.dtype);
  const Segments segs(a.n, n, seg);
  const int64_t segments = segs.per_chunk();
  const int lanes = lane_count(config, segments);
  const bool in_place = a.accumulate != nullptr;
  // Staging: one receive segment per lane in place; two otherwise (receive into one while the other,
  // holding the previous step's combined segment, is being sent).
  const int per_lane = in_place ? 1 : 2;
  std::byte* stage_base = staging(config, static_cast<size_t>(lanes * per_lane * seg) * es);
  auto stage = [&](int d, int step) {
    return stage_base + static_cast<size_t>((d * per_lane + (in_place ? 0 : step % 2)) * seg) * es;
  };
  const int64_t out_begin = comm_chunk(a.n, n, r).begin;
  const int steps = n - 1;

  auto post = [&](Lane& l, int d) {
    const ChunkRange in = segs.of(mod(r - 2 - l.step, n), l.segment);
    if (in.count > 0) l.recv = link.recv(link.left(), k_reduce_scatter_channel + d, stage(d, l.step), in.count * es);
    const ChunkRange out = segs.of(mod(r - 1 - l.step, n), l.segment);
    if (out.count > 0) {
      // Step 0 sends this rank's own values; later steps what the previous step combined.
      const std::byte* src = (l.step == 0 || in_place) ? a.own + out.begin * es : stage(d, l.step - 1);
      l.send = link.send(link.right(), k_reduce_scatter_channel + d, src, out.count * es);
    }
  };
  auto finish = [&](Lane& l, int d) {
    const ChunkRange in = segs.of(mod(r - 2 - l.step, n), l.segment);
    if (in.count > 0) {
      link.wait(l.recv);
      std::byte* received = stage(d, l.step);
      std::byte* dst = l.step == steps - 1 ? a.out + (in.begin - out_begin) * es
                       : in_place          ? a.accumulate + in.begin * es
                                           : received;
      reduce_elements(dst, received, a.own + in.begin * es, in.count, a.dtype, a.op);
    }
    link.wait(l.send);
  };
  run_lanes(link, segments, lanes, steps, post, finish);
}

// The all_gather ring over `out` (n elements) whose chunk rank() is already in place: at step s
// rank r forwards chunk r-s and receives chunk r-1-s.
void all_gather_ring(RingLink& link, const RingConfig& config, std::byte* out, int64_t n_elements, DType dtype) {
  const int n = link.size();
  const int r = link.rank();
  if (n == 1) return;
  const size_t es = dtype_size(dtype);
  const Segments segs(n_elements, n, segment_elements(config, dtype));
  const int64_t segments = segs.per_chunk();
  const int lanes = lane_count(config, segments);

  auto post = [&](Lane& l, int d) {
    const ChunkRange in = segs.of(mod(r - 1 - l.step, n), l.segment);
    if (in.count > 0) l.recv = link.recv(link.left(), k_all_gather_channel + d, out + in.begin * es, in.count * es);
    const ChunkRange fwd = segs.of(mod(r - l.step, n), l.segment);
    if (fwd.count > 0) l.send = link.send(link.right(), k_all_gather_channel + d, out + fwd.begin * es, fwd.count * es);
  };
  auto finish = [&](Lane& l, int) {
    link.wait(l.recv);
    link.wait(l.send);
  };
  run_lanes(link, segments, lanes, n - 1, post, finish);
}

}  // namespace

// ---- Interrupter -------------------------------------------------------------------------------

void Interrupter::abort() {
  std::lock_guard lock(m_mutex);
  m_aborted = true;
  if (m_current != nullptr) {
    // Gloo keeps the abort flag until the next wait consumes it, so this also works when the
    // communication thread has registered the buffer but not yet entered the wait.
    if (m_current_receiving)
      m_current->abortWaitRecv();
    else
      m_current->abortWaitSend();
  }
}

void Interrupter::begin_wait(gloo::transport::UnboundBuffer* buffer, bool receiving) {
  std::lock_guard lock(m_mutex);
  if (m_aborted) throw Aborted{};
  m_current = buffer;
  m_current_receiving = receiving;
}

void Interrupter::end_wait() {
  std::lock_guard lock(m_mutex);
  m_current = nullptr;
}

// ---- RingLink ----------------------------------------------------------------------------------

void RetiredBuffers::retire(std::unique_ptr<gloo::transport::UnboundBuffer> buffer) {
  m_buffers.push_back(std::move(buffer));
  if (m_buffers.size() > k_keep) m_buffers.pop_front();
}

RingLink::RingLink(gloo::Context* context, int rank, int size, Interrupter& interrupter, RetiredBuffers& retired,
                   uint64_t seq, std::chrono::milliseconds timeout)
    : m_context(context),
      m_rank(rank),
      m_size(size),
      m_interrupter(interrupter),
      m_retired(retired),
      m_seq(seq),
      m_timeout(timeout) {}

uint64_t RingLink::slot(int channel) const {
  DS_CHECK(channel >= 0 && channel < 256, "channel ", channel);
  // Unique per op: a late message of one op can never match a receive of the next.
  return (m_seq << 8) | static_cast<uint64_t>(channel);
}

PeerFailure RingLink::failure(int peer, bool receiving, const std::string& what) const {
  PeerFailure f;
  f.peer = peer;
  f.receiving = receiving;
  f.detail = what;
  if (contains(what, "closed by peer") || contains(what, "Socket closed") || contains(what, "unexpectedly closed"))
    f.kind = PeerFailure::Kind::closed;
  else if (contains(what, "reset by peer") || contains(what, "Broken pipe"))
    f.kind = PeerFailure::Kind::reset;
  else if (contains(what, "Timed out") || contains(what, "timeout"))
    f.kind = PeerFailure::Kind::timeout;
  return f;
}

RingLink::Transfer RingLink::send(int peer, int channel, const void* data, size_t bytes) {
  DS_CHECK(m_context != nullptr && peer != m_rank, "send to rank ", peer, " from rank ", m_rank);
  Transfer t;
  t.peer = peer;
  t.receiving = false;
  try {
    // Gloo only reads a buffer it sends from.
    t.buffer = m_context->createUnboundBuffer(const_cast<void*>(data), bytes);
    t.buffer->send(peer, slot(channel), 0, bytes);
  } catch (const std::exception& e) {
    throw failure(peer, false, e.what());
  }
  return t;
}

RingLink::Transfer RingLink::recv(int peer, int channel, void* data, size_t bytes) {
  DS_CHECK(m_context != nullptr && peer != m_rank, "recv from rank ", peer, " on rank ", m_rank);
  Transfer t;
  t.peer = peer;
  t.receiving = true;
  try {
    t.buffer = m_context->createUnboundBuffer(data, bytes);
    t.buffer->recv(peer, slot(channel), 0, bytes);
  } catch (const std::exception& e) {
    throw failure(peer, true, e.what());
  }
  return t;
}

void RingLink::wait(Transfer& t) {
  if (!t.buffer) return;
  m_interrupter.begin_wait(t.buffer.get(), t.receiving);
  bool completed = false;
  try {
    completed = t.receiving ? t.buffer->waitRecv(nullptr, m_timeout) : t.buffer->waitSend(nullptr, m_timeout);
  } catch (const std::exception& e) {
    m_interrupter.end_wait();
    throw failure(t.peer, t.receiving, e.what());
  }
  m_interrupter.end_wait();
  if (!completed) throw Aborted{};
  m_retired.retire(std::move(t.buffer));
}

// ---- the collectives ---------------------------------------------------------------------------

void all_reduce(RingLink& link, const RingConfig& config, void* buf, int64_t count, DType dtype, ReduceOp op) {
  auto* bytes = static_cast<std::byte*>(buf);
  const int64_t mine = comm_chunk(count, link.size(), link.rank()).begin;
  ReduceScatterArgs a;
  a.n = count;
  a.own = bytes;
  a.accumulate = bytes;
  a.out = bytes + mine * static_cast<int64_t>(dtype_size(dtype));
  a.dtype = dtype;
  a.op = op;
  reduce_scatter_ring(link, config, a);
  all_gather_ring(link, config, bytes, count, dtype);
}

void reduce_scatter(RingLink& link, const RingConfig& config, const void* send, void* recv, int64_t recv_count,
                    DType dtype, ReduceOp op) {
  ReduceScatterArgs a;
  a.n = recv_count * link.size();
  a.own = static_cast<const std::byte*>(send);
  a.out = static_cast<std::byte*>(recv);
  a.dtype = dtype;
  a.op = op;
  reduce_scatter_ring(link, config, a);
}

void all_gather(RingLink& link, const RingConfig& config, const void* send, void* recv, int64_t send_count,
                DType dtype) {
  const size_t chunk_bytes = static_cast<size_t>(send_count) * dtype_size(dtype);
  auto* out = static_cast<std::byte*>(recv);
  std::byte* mine = out + static_cast<size_t>(link.rank()) * chunk_bytes;
  if (mine != send && chunk_bytes > 0) std::memcpy(mine, send, chunk_bytes);
  all_gather_ring(link, config, out, send_count * link.size(), dtype);
}

void broadcast(RingLink& link, const RingConfig& config, void* buf, int64_t count, DType dtype, int root) {
  const int n = link.size();
  if (n == 1 || count == 0) return;
  // The chain root -> root+1 -> ... -> root-1: position 0 only sends, the last only receives.
  const int position = mod(link.rank() - root, n);
  const bool receives = position > 0;
  const bool forwards = position < n - 1;
  const size_t es = dtype_size(dtype);
  const int64_t seg = segment_elements(config, dtype);
  const int64_t segments = (count + seg - 1) / seg;
  const int lanes = lane_count(config, segments);
  auto* bytes = static_cast<std::byte*>(buf);
  auto range = [&](int64_t j) { return ChunkRange{j * seg, std::min(seg, count - j * seg)}; };

  // A lane's one "step" per segment: receive it (unless root), then forward it (unless last). The
  // forward is waited for at the lane's next visit, so it overlaps the next receive.
  auto post = [&](Lane& l, int d) {
    const ChunkRange s = range(l.segment);
    if (receives)
      l.recv = link.recv(link.left(), k_broadcast_channel + d, bytes + s.begin * es, s.count * es);
    else
      l.send = link.send(link.right(), k_broadcast_channel + d, bytes + s.begin * es, s.count * es);
  };
  auto finish = [&](Lane& l, int d) {
    link.wait(l.send);  // the previous forward (or the root's send)
    if (!receives) return;
    link.wait(l.recv);
    if (forwards) {
      const ChunkRange s = range(l.segment);
      l.send = link.send(link.right(), k_broadcast_channel + d, bytes + s.begin * es, s.count * es);
    }
  };
  run_lanes(link, segments, lanes, 1, post, finish);
}

}  // namespace ds::comm::gloo_ring
