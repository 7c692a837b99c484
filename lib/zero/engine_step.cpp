// The optimizer step at a gradient-accumulation boundary: finish reductions, agree on overflow /
// non-finite gradients, compute the global norm, unscale and clip, Adam on the optimizer space,
// write the updated compute-dtype params and re-gather them.
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>

#include "base/check.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "base/parallel.hpp"
#include "zero/engine_internal.hpp"
#include "zero/grad_norm.hpp"

namespace ds::zero {

using Clock = std::chrono::steady_clock;
using device::MemoryKind;


// Every rank learns whether any rank's gradient holds a NaN/inf, and (for the message) the
// highest-numbered param that does somewhere.
bool Engine::check_overflow_and_find_nonfinite(std::string* where) {
  const float* accum = m_grad_accum.as<float>();
  const int64_t bad = math(m_grad_accum.kind()).find_nonfinite(accum, m_space_numel);
  float code = 0.0f;  // param id + 1 of the bad element, exact in fp32 below 2^24 params
  if (bad >= 0) {
    for (const auto& seg : m_segments) {
      if (bad < seg.space_offset || bad >= seg.space_offset + seg.count) continue;
      const int64_t unit_index = seg.unit_begin + (bad - seg.space_offset);
      int64_t start = 0;
      for (model::ParamId p : m_layout.units[static_cast<size_t>(seg.unit)].params) {
        const int64_t n = m_layout.params[static_cast<size_t>(p)].numel;
        if (unit_index < start + n) {
          code = static_cast<float>(p + 1);
          break;
        }
        start += n;
      }
      break;
    }
  }
  comm::all_reduce(m_comm, TensorRef{&code, DType::f32, 1}, comm::ReduceOp::max);
  if (code > 0.0f && where) *where = m_layout.params[static_cast<size_t>(code) - 1].name;
  return code > 0.0f;
}

// Global L2 norm of the (still scaled) gradient. Each rank sums the squares of its owned slices
// (stage 0: of every rank's slices, which it holds) unit by unit in fixed blocks; the per-rank sums
// are exchanged bit for bit and added in rank order: the same value in every stage (Note
// [reduction order]). NaN/inf gives -1, as DeepSpeed.
double Engine::global_grad_norm() {
  const float* accum = m_grad_accum.as<float>();
  std::vector<double> per_rank(static_cast<size_t>(m_world), 0.0);
  EngineMath& norm_math = math(m_grad_accum.kind());
  std::vector<SquaresSlice> slices;
  if (m_options.stage == 0) {
    for (int r = 0; r < m_world; ++r) {
      slices.clear();
      for (size_t u = 0; u < m_layout.units.size(); ++u) {
        const auto& up = m_partition.unit(static_cast<int>(u));
        slices.push_back({accum + m_full_offset[u] + static_cast<int64_t>(r) * up.slice, DType::f32, up.slice});
      }
      per_rank[static_cast<size_t>(r)] = norm_math.sum_of_squares(slices);
    }
  } else {
    for (size_t u = 0; u < m_layout.units.size(); ++u) {
      const auto& up = m_partition.unit(static_cast<int>(u));
      slices.push_back({accum + up.shard_offset, DType::f32, up.slice});
    }
    double mine = norm_math.sum_of_squares(slices);
    // A double travels as two fp32 words through all_gather (a copy, so bit-exact).
    float send[2];
    std::memcpy(send, &mine, sizeof mine);
    std::vector<float> recv(static_cast<size_t>(2 * m_world));
    comm::all_gather(m_comm, TensorRef{send, DType::f32, 2}, TensorRef{recv.data(), DType::f32, 2 * m_world});
    for (int r = 0; r < m_world; ++r) std::memcpy(&per_rank[static_cast<size_t>(r)], recv.data() + 2 * r, sizeof(double));
  }
  double total = 0.0;
  for (double s : per_rank) total += s;
  return global_norm_from_sum(total);
}

void Engine::optimizer_step(double combined_scale, const std::vector<GroupValues>& values) {
  const auto& groups = m_options.optimizer.groups;
  DS_CHECK(values.size() == groups.size(), values.size(), " schedule values for ", groups.size(), " param groups");
  std::vector<AdamHyper> hyper(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    hyper[g].lr = static_cast<float>(values[g].lr);
    hyper[g].beta1 = static_cast<float>(values[g].beta1.value_or(groups[g].beta1));
    hyper[g].beta2 = static_cast<float>(values[g].beta2.value_or(groups[g].beta2));
    hyper[g].eps = static_cast<float>(groups[g].eps);
    hyper[g].weight_decay = static_cast<float>(groups[g].weight_decay);
    hyper[g].mode = m_options.optimizer.mode;
    hyper[g].bias_correction = m_options.optimizer.bias_correction;
    hyper[g].step = m_group_steps[g] + 1;
  }
  const float grad_scale = static_cast<float>(1.0 / combined_scale);

  // Where the updated compute-dtype params go: stage 0 straight into the full buffers; stages 1-3
  // into the shard (through a host staging copy when the optimizer is offloaded and the shard is
  // device memory).
  std::byte* out16 = nullptr;
  std::byte* staging = nullptr;
  if (m_options.stage == 0) out16 = m_full_flat.as<std::byte>();
  else if (m_staging16) staging = m_staging16.as<std::byte>();
  else out16 = m_shard16.as<std::byte>();
  std::byte* target = staging ? staging : out16;

  // Stage 3 steps in tiles of sub_group_size elements (DeepSpeed's optimizer sub-groups); with an
  // offloaded optimizer each tile's params are copied back as soon as it is done.
  const int64_t tile = m_options.stage == 3 ? std::max<int64_t>(1, m_options.sub_group_size) : m_space_numel;
  std::vector<ParamGroupSegment> segs;
  for (int64_t tile_begin = 0; tile_begin < m_space_numel; tile_begin += tile) {
    const int64_t tile_end = std::min(m_space_numel, tile_begin + tile);
    segs.clear();
    for (const auto& run : m_runs) {
      const int64_t b = std::max(run.space_offset, tile_begin);
      const int64_t e = std::min(run.space_offset + run.count, tile_end);
      if (b < e) segs.push_back({b, e - b, run.group});
    }
    ++m_optimizer_tiles;
    math(m_master.kind())
        .adam_step(hyper, segs, m_master.as<float>(), GradIn(m_grad_accum.as<float>(), grad_scale), m_exp_avg.as<float>(),
                   m_exp_avg_sq.as<float>(), m_space_numel, Copy16{target, m_options.compute_dtype});
    if (staging) {
      const size_t off = static_cast<size_t>(tile_begin) * m_esize;
      m_device.copy(m_shard16.as<std::byte>() + off, staging + off, static_cast<size_t>(tile_end - tile_begin) * m_esize, *m_copy_stream);
    }
  }
  if (staging) m_copy_stream->synchronize();
  for (auto& s : m_group_steps) ++s;
}

// Stage 1/2: all-gather every unit's updated slices into the full buffers, in collectives of at
// most allgather_bucket_size elements (Note [allgather buckets]). Stage 3: gathered copies are
// stale; release them, and re-gather the persistent units at once.
//
// Note [allgather buckets]. This rank's slices of all units lie back to back in m_shard16 (unit
// order), so any run of them is one contiguous send buffer. A bucket is such a run of P elements
// per rank, P = allgather_bucket_size / world rounded down to k_shard_align (at least
// k_shard_align): it may hold several small units, or cut a large unit's slice into pieces, and
// each bucket is one all-gather of world * P elements. The result is rank-major (rank c's run,
// then rank c+1's) while a unit's full buffer is [slice of rank 0, slice of rank 1, ...], so each
// piece is copied to its place; copies are exact, so the parameters do not depend on the bucket
// size. Two buckets are in flight at once (gather the next while unpacking one). DeepSpeed 0.19
// bounds its stage 1/2 gather the same way only where all_gather_into_tensor is missing; with it,
// it gathers each whole flat group in one call (research/zero-anchors.md §1.6).
void Engine::post_step_gather() {
  if (m_options.stage == 0) return;
  if (m_options.stage <= 2) {
    gather_param_buckets();
    return;
  }
  for (size_t u = 0; u < m_layout.units.size(); ++u) release_unit(static_cast<int>(u));
  for (size_t u = 0; u < m_layout.units.size(); ++u)
    if (m_units[u]->persistent) start_gather(static_cast<int>(u));
}

void Engine::gather_param_buckets() {
  struct Piece {
    int unit;
    int64_t begin, count;  // elements [begin, begin + count) of every rank's slice of the unit
  };
  struct Bucket {
    std::vector<Piece> pieces;
    int64_t per_rank = 0;   // elements each rank sends
    device::Buffer recv;    // world * per_rank elements, rank-major
    std::shared_ptr<comm::Work> work;
  };
  const int64_t esize = static_cast<int64_t>(m_esize);
  const int64_t per_rank_max =
      std::max<int64_t>(k_shard_align, m_options.allgather_bucket_size / m_world / k_shard_align * k_shard_align);
  std::deque<Bucket> in_flight;
  Bucket filling;

  auto unpack = [&](Bucket& b) {
    b.work->wait();
    for (int r = 0; r < m_world; ++r) {
      int64_t pos = static_cast<int64_t>(r) * b.per_rank;
      for (const Piece& p : b.pieces) {
        const auto& up = m_partition.unit(p.unit);
        m_device.copy(static_cast<std::byte*>(m_units[static_cast<size_t>(p.unit)]->full_ptr) + (r * up.slice + p.begin) * esize,
                      b.recv.as<std::byte>() + pos * esize, static_cast<size_t>(p.count * esize), *m_copy_stream);
        pos += p.count;
      }
    }
    m_copy_stream->synchronize();
    track(m_memory.buckets, -static_cast<int64_t>(b.recv.bytes()));
    b.recv.reset();
  };
  auto issue = [&]() {
    if (filling.pieces.empty()) return;
    Bucket b = std::move(filling);
    filling = Bucket{};
    const Piece& first = b.pieces.front();
    const std::byte* send = m_shard16.as<std::byte>() + (m_partition.unit(first.unit).shard_offset + first.begin) * esize;
    b.recv = m_device.alloc(static_cast<size_t>(m_world * b.per_rank * esize), MemoryKind::device);
    track(m_memory.buckets, static_cast<int64_t>(b.recv.bytes()));
    b.work = m_comm.all_gather(send, b.recv.data(), b.per_rank, m_options.compute_dtype);
    ++m_gather_collectives;
    in_flight.push_back(std::move(b));
    if (in_flight.size() > 2) {
      unpack(in_flight.front());
      in_flight.pop_front();
    }
  };
  try {
    for (size_t u = 0; u < m_layout.units.size(); ++u) {
      const int64_t slice = m_partition.unit(static_cast<int>(u)).slice;
      for (int64_t begin = 0; begin < slice;) {
        const int64_t n = std::min(slice - begin, per_rank_max - filling.per_rank);
        filling.pieces.push_back({static_cast<int>(u), begin, n});
        filling.per_rank += n;
        begin += n;
        if (filling.per_rank == per_rank_max) issue();
      }
    }
    issue();
    while (!in_flight.empty()) {
      unpack(in_flight.front());
      in_flight.pop_front();
    }
  } catch (...) {
    // The communicator may still write into the receive buffers: let every op end before they go.
    for (auto& b : in_flight) {
      try {
        b.work->wait();
      } catch (...) {
      }
    }
    throw;
  }
}

StepResult Engine::step(const std::vector<GroupValues>& groups) {
  DS_CHECK(m_micro_step == m_options.grad_accum_steps, "step() after ", m_micro_step, " micro-steps; expected ",
           m_options.grad_accum_steps);
  m_micro_step = 0;
  StepResult result;
  result.loss_scale = m_scaler.scale();

  auto t0 = Clock::now();
  finish_reductions();
  auto t1 = Clock::now();
  result.reduce_wait = t1 - t0;

  std::string bad_tensor;
  const bool overflow = check_overflow_and_find_nonfinite(&bad_tensor);
  if (overflow) {
    if (m_options.compute_dtype == DType::f16) {
      // fp16: skip the step and let the scaler back off (DeepSpeed's behaviour: no optimizer step,
      // no all-gather, no scheduler step; global step still counts).
      m_scaler.update(Overflow::yes);
      ++m_steps_skipped;
      zero_grads();
      result.applied = false;
      result.grad_norm = -1.0;
      result.next_loss_scale = m_scaler.scale();
      if (m_rank == 0) log::info("step ", m_steps_applied + m_steps_skipped, ": fp16 gradient overflow in ", bad_tensor, ": ", m_scaler.last_message());
      return result;
    }
    if (m_options.check_nonfinite)
      throw NumericsError("non-finite gradient (NaN or inf) in " + bad_tensor + " at step " +
                          std::to_string(m_steps_applied + m_steps_skipped + 1) + " (" + dtype_name(m_options.compute_dtype) +
                          "); the step was not applied, so the parameters and the last checkpoint are intact. "
                          "Lower the learning rate, enable gradient_clipping, or resume from the last checkpoint");
  }

  const double scaled_norm = global_grad_norm();
  const double scale = m_scaler.scale();
  result.grad_norm = scaled_norm >= 0 ? scaled_norm / scale : -1.0;
  const double combined = clip_coefficient(scaled_norm, scale, m_options.gradient_clipping);
  auto t2 = Clock::now();
  const int64_t tiles_before = m_optimizer_tiles, gathers_before = m_gather_collectives;
  optimizer_step(combined, groups);
  auto t3 = Clock::now();
  result.optimizer = t3 - t2;

  m_scaler.update(Overflow::no);
  ++m_steps_applied;
  zero_grads();
  post_step_gather();
  result.gather = Clock::now() - t3;
  result.optimizer_tiles = m_optimizer_tiles - tiles_before;
  result.gather_collectives = m_gather_collectives - gathers_before;
  result.next_loss_scale = m_scaler.scale();
  return result;
}

// ---- checkpoint support ------------------------------------------------------------------------

nlohmann::json Engine::state_json() const {
  return {{"steps_applied", m_steps_applied},
          {"steps_skipped", m_steps_skipped},
          {"group_steps", m_group_steps},
          {"loss_scaler", m_scaler.to_json()}};
}

void Engine::load_state_json(const nlohmann::json& state) {
  m_steps_applied = state.at("steps_applied").get<int64_t>();
  m_steps_skipped = state.at("steps_skipped").get<int64_t>();
  auto steps = state.at("group_steps").get<std::vector<int64_t>>();
  if (steps.size() != m_group_steps.size())
    throw CheckpointError("the checkpoint has " + std::to_string(steps.size()) + " optimizer parameter groups, this run " +
                          std::to_string(m_group_steps.size()) + "; use the same --param_group flags as the saved run");
  m_group_steps = steps;
  m_scaler.load_json(state.at("loss_scaler"));
}

void Engine::read_state(int unit, int64_t begin, int64_t count, StateTensor which, float* host_out) const {
  const auto& seg = m_segments.at(static_cast<size_t>(unit));
  DS_CHECK(seg.unit == unit && begin >= seg.unit_begin && begin + count <= seg.unit_begin + seg.count,
           "read_state outside this rank's space: unit ", unit, " [", begin, ", +", count, ")");
  const device::Buffer& buf = which == StateTensor::master ? m_master : which == StateTensor::exp_avg ? m_exp_avg : m_exp_avg_sq;
  copy_out(host_out, buf.as<float>() + seg.space_offset + (begin - seg.unit_begin), buf.kind(), static_cast<size_t>(count) * 4);
}

void Engine::load_optimizer_space(const SliceReader& reader) {
  DS_CHECK(m_micro_step == 0 && m_pending.empty(), "load_optimizer_space in the middle of a step");
  for (auto* b : {&m_master, &m_exp_avg, &m_exp_avg_sq}) math(b->kind()).zero(b->data(), b->bytes());
  const bool direct = !on_gpu(m_master.kind());
  std::vector<float> host;
  // Every rank reads its own slices; a rank that fails must not leave the others waiting in the
  // collectives that follow: all agree on the outcome first.
  std::exception_ptr failure;
  try {
    for (const auto& seg : m_segments) {
      const int64_t numel = m_partition.unit(seg.unit).numel;
      const int64_t b = seg.unit_begin;
      const int64_t e = std::min(seg.unit_begin + seg.count, numel);
      if (b >= e) continue;
      for (auto [which, buf] : {std::pair{StateTensor::master, &m_master}, {StateTensor::exp_avg, &m_exp_avg},
                                {StateTensor::exp_avg_sq, &m_exp_avg_sq}}) {
        float* dst = buf->as<float>() + seg.space_offset;
        if (direct) {
          reader(seg.unit, b, e - b, which, dst);
        } else {
          host.assign(static_cast<size_t>(e - b), 0.0f);
          reader(seg.unit, b, e - b, which, host.data());
          copy_in(dst, buf->kind(), host.data(), host.size() * sizeof(float));
        }
      }
    }
  } catch (const Error&) {
    failure = std::current_exception();
  }
  float failed_rank = failure ? static_cast<float>(m_rank + 1) : 0.0f;
  comm::all_reduce(m_comm, TensorRef{&failed_rank, DType::f32, 1}, comm::ReduceOp::max);
  if (failure) std::rethrow_exception(failure);
  if (failed_rank > 0)
    throw CheckpointError("rank " + std::to_string(static_cast<int>(failed_rank) - 1) +
                          " could not read its part of the checkpoint (its log says why); nothing was loaded");
  zero_grads();
  refresh_params_from_master();
}

}  // namespace ds::zero
