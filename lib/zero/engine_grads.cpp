// Gradient reduction: buckets of units packed rank-major, pre-divided by the world size and
// reduced on the communicator's thread while backward goes on (Note [reduction order] in
// engine.hpp). Stage 0 all-reduces and keeps the whole result; stages 1-3 reduce-scatter and keep
// their chunk; everything lands in the fp32 gradient accumulator of the optimizer space.
//
// When: stages 2/3 reduce every micro-step as soon as a unit's gradient is complete (its last
// reader's end_backward); stages 0/1 let gradients accumulate in the full buffers and reduce them
// during the last micro-step's backward (DeepSpeed stage 1 reduces at the boundary too).
//
// Note [round robin]. DeepSpeed's round_robin_gradients reorders params so consecutive gradients
// belong to different owner ranks. Every bucket here already spreads evenly over all ranks (each
// unit is split into world-size equal slices), so there is nothing to reorder: the option is
// accepted and has no effect.
#include <algorithm>
#include <cstring>

#include "base/check.hpp"
#include "zero/engine_internal.hpp"

namespace ds::zero {

using device::MemoryKind;

TensorRef Engine::alloc_grad_full(int unit) {
  auto& us = *m_units[static_cast<size_t>(unit)];
  DS_CHECK(m_options.stage >= 2 && !us.grad, "grad buffer of unit ", unit, " allocated twice");
  const auto& up = m_partition.unit(unit);
  us.grad = m_device.alloc(static_cast<size_t>(up.padded) * m_esize, MemoryKind::device);
  m_device.fill_zero(us.grad.data(), us.grad.bytes(), m_device.compute_stream());
  track(m_memory.grads_full, static_cast<int64_t>(us.grad.bytes()));
  return {us.grad.data(), m_options.compute_dtype, up.padded};
}

void Engine::grads_ready(int unit) {
  const bool last_micro_step = m_micro_step == m_options.grad_accum_steps - 1;
  auto& us = *m_units[static_cast<size_t>(unit)];
  if (m_grad_sum32) {
    // grad_accum_dtype fp32 (stage 0/1, 16-bit training): this micro-step's gradient of the unit
    // is complete; add it to the fp32 sum and start the next micro-step from zero.
    const auto& up = m_partition.unit(unit);
    math(m_grad_sum32.kind()).accumulate_f32(m_grad_sum32.as<float>() + m_full_offset[static_cast<size_t>(unit)], us.grad_ptr, m_options.compute_dtype, up.padded);
    m_device.fill_zero(us.grad_ptr, static_cast<size_t>(up.padded) * m_esize, m_device.compute_stream());
  }
  if (m_options.stage <= 1 && !last_micro_step) return;  // keep accumulating in the full buffers
  if (!us.grad_ptr) {
    // No module wrote this unit's gradient this micro-step (cannot happen with GPT-2, but the
    // reduction must still be issued: every rank issues the same collectives).
    TensorRef full = alloc_grad_full(unit);
    us.grad_ptr = full.data;
  }
  m_bucket_units.push_back(unit);
  m_bucket_numel += m_partition.unit(unit).padded;
  if (m_bucket_numel >= m_options.reduce_bucket_size || m_options.contiguous_gradients == Contiguous::no) flush_bucket();
}

void Engine::flush_bucket() {
  if (m_bucket_units.empty()) return;
  auto pending = std::make_unique<PendingReduction>();
  pending->units = m_bucket_units;
  std::sort(pending->units.begin(), pending->units.end());
  m_bucket_units.clear();
  m_bucket_numel = 0;

  const DType comm = m_options.comm_dtype;
  const size_t csize = dtype_size(comm);
  int64_t padded = 0, slices = 0;
  for (int u : pending->units) {
    padded += m_partition.unit(u).padded;
    slices += m_partition.unit(u).slice;
  }
  // Pack: for each rank r, its slice of every unit, pre-divided by the world size (as DeepSpeed
  // does, which keeps fp16 sums in range).
  pending->packed = m_device.alloc(static_cast<size_t>(padded) * csize, MemoryKind::device);
  track(m_memory.buckets, static_cast<int64_t>(pending->packed.bytes()));
  const float inv_world = 1.0f / static_cast<float>(m_world);
  int64_t pos = 0;
  // The gradient to reduce: the fp32 sum (grad_accum_dtype fp32 at stage 0/1), else the full buffer.
  const DType grad_type = m_grad_sum32 ? DType::f32 : m_options.compute_dtype;
  const int64_t grad_size = static_cast<int64_t>(dtype_size(grad_type));
  for (int r = 0; r < m_world; ++r)
    for (int u : pending->units) {
      const auto& up = m_partition.unit(u);
      const std::byte* unit_grad = m_grad_sum32 ? m_grad_sum32.as<std::byte>() + m_full_offset[static_cast<size_t>(u)] * 4
                                                : static_cast<const std::byte*>(m_units[static_cast<size_t>(u)]->grad_ptr);
      const std::byte* src = unit_grad + static_cast<int64_t>(r) * up.slice * grad_size;
      math(pending->packed.kind()).convert_scaled(pending->packed.as<std::byte>() + pos * static_cast<int64_t>(csize), comm, src, grad_type,
                     up.slice, inv_world);
      pos += up.slice;
    }
  if (m_options.stage >= 2)
    for (int u : pending->units) {  // the packed copy holds what is needed: free the full gradient
      auto& us = *m_units[static_cast<size_t>(u)];
      track(m_memory.grads_full, -static_cast<int64_t>(us.grad.bytes()));
      us.grad.reset();
      us.grad_ptr = nullptr;
    }

  if (m_options.stage == 0) {
    pending->work = m_comm.all_reduce(pending->packed.data(), padded, comm, comm::ReduceOp::sum);
  } else {
    pending->recv = m_device.alloc(static_cast<size_t>(slices) * csize, MemoryKind::device);
    track(m_memory.buckets, static_cast<int64_t>(pending->recv.bytes()));
    pending->work = m_comm.reduce_scatter(pending->packed.data(), pending->recv.data(), slices, comm, comm::ReduceOp::sum);
  }
  m_pending.push_back(std::move(pending));
  // overlap_comm: keep up to two buckets in flight (DeepSpeed's double buffering); otherwise wait now.
  const size_t max_in_flight = m_options.overlap_comm == Overlap::yes ? 2 : 0;
  while (m_pending.size() > max_in_flight) {
    complete_reduction(*m_pending.front());
    m_pending.pop_front();
  }
}

void Engine::complete_reduction(PendingReduction& pending) {
  pending.work->wait();
  const DType comm = m_options.comm_dtype;
  const int64_t csize = static_cast<int64_t>(dtype_size(comm));
  float* accum = m_grad_accum.as<float>();
  EngineMath& accum_math = math(m_grad_accum.kind());
  // The accumulator is GPU memory (the GPU optimizer: accumulated by the GPU math) or host memory
  // (CPU ranks, or the optimizer offloaded: device buckets are copied to the host first).
  if (m_options.stage == 0) {
    int64_t pos = 0;
    for (int r = 0; r < m_world; ++r)
      for (int u : pending.units) {
        const auto& up = m_partition.unit(u);
        accum_math.accumulate_f32(accum + m_full_offset[static_cast<size_t>(u)] + static_cast<int64_t>(r) * up.slice,
                                  pending.packed.as<std::byte>() + pos * csize, comm, up.slice);
        pos += up.slice;
      }
  } else {
    int64_t pos = 0;
    for (int u : pending.units) {
      const auto& up = m_partition.unit(u);
      const std::byte* src = pending.recv.as<std::byte>() + pos * csize;
      device::Buffer host_copy;
      if (pending.recv.kind() == MemoryKind::device && m_device.kind() != device::DeviceKind::cpu &&
          !on_gpu(m_grad_accum.kind())) {
        host_copy = m_device.alloc(static_cast<size_t>(up.slice * csize), MemoryKind::host);
        m_device.copy(host_copy.data(), src, host_copy.bytes(), *m_copy_stream);
        m_copy_stream->synchronize();
        src = host_copy.as<std::byte>();
      }
      accum_math.accumulate_f32(accum + up.shard_offset, src, comm, up.slice);
      pos += up.slice;
    }
    track(m_memory.buckets, -static_cast<int64_t>(pending.recv.bytes()));
    pending.recv.reset();
  }
  track(m_memory.buckets, -static_cast<int64_t>(pending.packed.bytes()));
  pending.packed.reset();
}

void Engine::finish_reductions() {
  flush_bucket();
  while (!m_pending.empty()) {
    complete_reduction(*m_pending.front());
    m_pending.pop_front();
  }
}

void Engine::zero_grads() {
  math(m_grad_accum.kind()).zero(m_grad_accum.data(), m_grad_accum.bytes());
  // Queued on the compute stream, before the next micro-step's backward that accumulates into it.
  if (m_grad_sum32) m_device.fill_zero(m_grad_sum32.data(), m_grad_sum32.bytes(), m_device.compute_stream());
  if (m_grad_flat) m_device.fill_zero(m_grad_flat.data(), m_grad_flat.bytes(), m_device.compute_stream());
}

}  // namespace ds::zero
