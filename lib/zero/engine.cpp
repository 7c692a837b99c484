// The engine's layout, buffers and ParamAccess hooks (stage 3 gathering, prefetch and release).
// Gradient reduction is in engine_grads.cpp, the optimizer step in engine_step.cpp.
#include "zero/engine.hpp"

#include <algorithm>
#include <cstring>

#include "model/init.hpp"
#include "base/check.hpp"
#include "base/error.hpp"
#include "base/format.hpp"
#include "base/log.hpp"
#include "base/parallel.hpp"
#include "zero/engine_internal.hpp"

namespace ds::zero {

using device::MemoryKind;

namespace {

void validate(const EngineOptions& o, const device::Device& device) {
  if (o.stage < 0 || o.stage > 3)
    throw ConfigError("zero_optimization.stage: " + std::to_string(o.stage) + " is not a ZeRO stage; use 0, 1, 2 or 3");
  if (o.stage == 0 && o.offload_optimizer != OffloadDevice::none)
    throw ConfigError("zero_optimization.offload_optimizer needs ZeRO stage 1, 2 or 3 (stage is 0): set stage to 1 or more, or remove the offload");
  if (o.grad_accum_steps < 1) throw ConfigError("gradient_accumulation_steps must be at least 1");
  if (o.optimizer.groups.empty()) throw ConfigError("the optimizer has no parameter group");
  if (o.reduce_bucket_size < 1) throw ConfigError("zero_optimization.reduce_bucket_size must be positive");
  if (o.grad_accum_dtype && *o.grad_accum_dtype != DType::f32 && *o.grad_accum_dtype != o.compute_dtype)
    throw ConfigError(std::string("data_types.grad_accum_dtype: \"") + dtype_name(*o.grad_accum_dtype) + "\" with " +
                      dtype_name(o.compute_dtype) + " training: gradients are summed in fp32 or in the training dtype; set it to \"fp32\"" +
                      (o.compute_dtype == DType::f32 ? std::string() : std::string(" or \"") + dtype_name(o.compute_dtype) + "\"") +
                      ", or remove it");
}

}  // namespace

// ---- memory report ----------------------------------------------------------------------------

int64_t MemoryReport::total_current() const {
  return params_full.current + params_shard.current + grads_full.current + grad_accum.current + optimizer.current +
         buckets.current;
}

int64_t MemoryReport::total_peak_sum() const {
  return params_full.peak + params_shard.peak + grads_full.peak + grad_accum.peak + optimizer.peak + buckets.peak;
}

nlohmann::json MemoryReport::to_json() const {
  auto entry = [](const Entry& e) { return nlohmann::json{{"current", e.current}, {"peak", e.peak}}; };
  return {{"params_full", entry(params_full)}, {"params_shard", entry(params_shard)},
          {"grads_full", entry(grads_full)},   {"grad_accum", entry(grad_accum)},
          {"optimizer", entry(optimizer)},     {"buckets", entry(buckets)},
          {"device_peak", device_peak},        {"host_peak", host_peak}};
}

void Engine::track(MemoryReport::Entry& entry, int64_t delta) const {
  entry.current += delta;
  entry.peak = std::max(entry.peak, entry.current);
}

MemoryReport Engine::memory() const {
  MemoryReport r = m_memory;
  const auto& c = m_device.counters();
  r.device_peak = static_cast<int64_t>(c.peak_of(MemoryKind::device));
  r.host_peak = static_cast<int64_t>(c.peak_of(MemoryKind::pinned_host) + c.peak_of(MemoryKind::host));
  return r;
}

void Engine::reset_memory_peaks() {
  for (auto* e : {&m_memory.params_full, &m_memory.params_shard, &m_memory.grads_full, &m_memory.grad_accum,
                  &m_memory.optimizer, &m_memory.buckets})
    e->peak = e->current;
  m_device.reset_peaks();
}

// ---- construction -----------------------------------------------------------------------------

Engine::Engine(const EngineOptions& options, const model::ModelLayout& layout, comm::Comm& comm,
               device::Device& device, uint64_t seed)
    : m_options(options),
      m_layout(layout),
      m_comm(comm),
      m_device(device),
      m_partition(layout, comm.size(), comm.rank()),
      m_world(comm.size()),
      m_rank(comm.rank()),
      m_esize(dtype_size(options.compute_dtype)),
      m_scaler(options.loss_scale) {
  validate(m_options, m_device);
  if (m_options.optimizer.group_of_param.size() != m_layout.params.size())
    DS_CHECK(false, "group_of_param has ", m_options.optimizer.group_of_param.size(), " entries for ",
             m_layout.params.size(), " params");
  m_copy_stream = m_device.create_stream();
  m_host_math = make_host_math();
  if (m_device.kind() == device::DeviceKind::cuda) m_gpu_math = make_cuda_math(m_device);
  build_space();
  allocate();
  init_from_seed(seed);
}

Engine::~Engine() {
  // Queued collectives reference our buffers: let them finish before the buffers go.
  for (auto& p : m_pending)
    if (p->work) {
      try {
        p->work->wait();
      } catch (...) {
      }
    }
  for (auto& u : m_units)
    if (u && u->gather_work) {
      try {
        u->gather_work->wait();
      } catch (...) {
      }
    }
}

void Engine::build_space() {
  const int n_units = static_cast<int>(m_layout.units.size());
  const int n_modules = static_cast<int>(m_layout.modules.size());
  m_grad_ready_module = m_layout.grad_ready_module();

  // Stage 0 steps the whole model (Note [unit sharding]: the space is every unit's padded buffer,
  // unit after unit, the same layout as m_full_flat); stages 1-3 step this rank's shard.
  m_full_offset.assign(static_cast<size_t>(n_units), 0);
  int64_t full = 0;
  for (int u = 0; u < n_units; ++u) {
    m_full_offset[static_cast<size_t>(u)] = full;
    full += m_partition.unit(u).padded;
  }
  m_segments.clear();
  for (int u = 0; u < n_units; ++u) {
    const auto& up = m_partition.unit(u);
    if (m_options.stage == 0)
      m_segments.push_back({u, 0, up.padded, m_full_offset[static_cast<size_t>(u)]});
    else
      m_segments.push_back({u, static_cast<int64_t>(m_rank) * up.slice, up.slice, up.shard_offset});
  }
  m_space_numel = m_options.stage == 0 ? full : m_partition.shard_numel();

  // Group runs: walk each segment's params (padding is in no run, so it is never updated).
  m_runs.clear();
  for (const auto& seg : m_segments) {
    int64_t param_start = 0;
    for (model::ParamId p : m_layout.units[static_cast<size_t>(seg.unit)].params) {
      const int64_t n = m_layout.params[static_cast<size_t>(p)].numel;
      const int64_t b = std::max(param_start, seg.unit_begin);
      const int64_t e = std::min(param_start + n, seg.unit_begin + seg.count);
      if (b < e) {
        const int group = m_options.optimizer.group_of_param[static_cast<size_t>(p)];
        const int64_t offset = seg.space_offset + (b - seg.unit_begin);
        if (!m_runs.empty() && m_runs.back().group == group && m_runs.back().space_offset + m_runs.back().count == offset)
          m_runs.back().count += e - b;
        else
          m_runs.push_back({offset, e - b, group});
      }
      param_start += n;
    }
  }
  m_group_steps.assign(m_options.optimizer.groups.size(), 0);

  // Execution positions: forward of module m at m, backward of module m at 2M-1-m.
  m_units_of_module.assign(static_cast<size_t>(n_modules), {});
  for (int m = 0; m < n_modules; ++m) m_units_of_module[static_cast<size_t>(m)] = m_layout.modules[static_cast<size_t>(m)].units;
  m_position_numel.assign(static_cast<size_t>(2 * n_modules), 0);
  for (int k = 0; k < 2 * n_modules; ++k) {
    const int m = k < n_modules ? k : 2 * n_modules - 1 - k;
    for (int u : m_units_of_module[static_cast<size_t>(m)]) m_position_numel[static_cast<size_t>(k)] += m_partition.unit(u).numel;
  }
}

void Engine::allocate() {
  const int n_units = static_cast<int>(m_layout.units.size());
  const int64_t padded = m_partition.padded_numel();
  const bool offload_opt = m_options.offload_optimizer == OffloadDevice::cpu;
  const bool offload_param = m_options.stage == 3 && m_options.offload_param == OffloadDevice::cpu;
  const MemoryKind opt_kind = offload_opt ? (m_options.offload_optimizer_pin_memory ? MemoryKind::pinned_host : MemoryKind::host)
                                          : MemoryKind::device;
  auto& stream = m_device.compute_stream();

  m_units.clear();
  for (int u = 0; u < n_units; ++u) m_units.push_back(std::make_unique<UnitState>());

  try {
    if (m_options.stage <= 2) {
      m_full_flat = m_device.alloc(static_cast<size_t>(padded) * m_esize, MemoryKind::device);
      m_device.fill_zero(m_full_flat.data(), m_full_flat.bytes(), stream);
      track(m_memory.params_full, static_cast<int64_t>(m_full_flat.bytes()));
      for (int u = 0; u < n_units; ++u) {
        auto& us = *m_units[static_cast<size_t>(u)];
        us.full_ptr = m_full_flat.as<std::byte>() + m_full_offset[static_cast<size_t>(u)] * static_cast<int64_t>(m_esize);
        us.status = UnitStatus::available;
      }
    }
    if (m_options.stage <= 1) {
      // Gradients accumulate across micro-steps in full buffers until the boundary reduction.
      m_grad_flat = m_device.alloc(static_cast<size_t>(padded) * m_esize, MemoryKind::device);
      m_device.fill_zero(m_grad_flat.data(), m_grad_flat.bytes(), stream);
      track(m_memory.grads_full, static_cast<int64_t>(m_grad_flat.bytes()));
      for (int u = 0; u < n_units; ++u)
        m_units[static_cast<size_t>(u)]->grad_ptr =
            m_grad_flat.as<std::byte>() + m_full_offset[static_cast<size_t>(u)] * static_cast<int64_t>(m_esize);
      if (m_options.grad_accum_dtype == DType::f32 && m_options.compute_dtype != DType::f32) {
        m_grad_sum32 = m_device.alloc(static_cast<size_t>(padded) * 4, MemoryKind::device);
        m_device.fill_zero(m_grad_sum32.data(), m_grad_sum32.bytes(), stream);
        track(m_memory.grads_full, static_cast<int64_t>(m_grad_sum32.bytes()));
      }
    }
    if (m_options.stage >= 1) {
      const MemoryKind shard_kind = offload_param
                                        ? (m_options.offload_param_pin_memory ? MemoryKind::pinned_host : MemoryKind::host)
                                        : MemoryKind::device;
      m_shard16 = m_device.alloc(static_cast<size_t>(m_space_numel) * m_esize, shard_kind);
      m_device.fill_zero(m_shard16.data(), m_shard16.bytes(), stream);
      if (m_options.stage == 3) track(m_memory.params_shard, static_cast<int64_t>(m_shard16.bytes()));
      else track(m_memory.buckets, static_cast<int64_t>(m_shard16.bytes()));  // stage 1/2: a staging copy for the all-gather
    }
    const size_t space_bytes = static_cast<size_t>(m_space_numel) * 4;
    for (auto* b : {&m_master, &m_exp_avg, &m_exp_avg_sq}) {
      *b = m_device.alloc(space_bytes, opt_kind);
      math(opt_kind).zero(b->data(), space_bytes);
      track(m_memory.optimizer, static_cast<int64_t>(space_bytes));
    }
    m_grad_accum = m_device.alloc(space_bytes, opt_kind);
    math(opt_kind).zero(m_grad_accum.data(), space_bytes);
    track(m_memory.grad_accum, static_cast<int64_t>(space_bytes));
    if (offload_opt && !offload_param) {
      m_staging16 = m_device.alloc(static_cast<size_t>(m_space_numel) * m_esize, opt_kind);
      track(m_memory.buckets, static_cast<int64_t>(m_staging16.bytes()));
    }
  } catch (const ResourceError& e) {
    throw ResourceError(std::string(e.what()) + " (while allocating ZeRO stage " + std::to_string(m_options.stage) +
                        " buffers: " + format_bytes(m_memory.total_current()) + " held so far on this rank)");
  }
  m_device.compute_stream().synchronize();

  // Persistence (stage 3): small units stay gathered, up to model_persistence_threshold / ws in all.
  if (m_options.stage == 3) {
    int64_t persistent_total = 0;
    const int64_t budget = m_options.model_persistence_threshold / std::max(1, m_world);
    for (int u = 0; u < n_units; ++u) {
      const int64_t n = m_partition.unit(u).numel;
      if (n <= m_options.param_persistence_threshold && persistent_total + n <= budget) {
        m_units[static_cast<size_t>(u)]->persistent = true;
        persistent_total += n;
      }
    }
  }
}

void Engine::init_from_seed(uint64_t seed) {
  // Each segment is initialised in host memory (in place when the master is host memory, else in
  // a host buffer copied over): the counter-based generator runs on the CPU.
  const bool direct = !on_gpu(m_master.kind());
  std::vector<float> host;
  for (const auto& seg : m_segments) {
    float* master = m_master.as<float>() + seg.space_offset;
    float* out = master;
    if (!direct) {
      host.assign(static_cast<size_t>(seg.count), 0.0f);
      out = host.data();
    }
    int64_t param_start = 0;
    for (model::ParamId p : m_layout.units[static_cast<size_t>(seg.unit)].params) {
      const auto& info = m_layout.params[static_cast<size_t>(p)];
      const int64_t b = std::max(param_start, seg.unit_begin);
      const int64_t e = std::min(param_start + info.numel, seg.unit_begin + seg.count);
      if (b < e) model::init_param_slice(info, p, seed, b - param_start, e - b, out + (b - seg.unit_begin));
      param_start += info.numel;
    }
    if (!direct) copy_in(master, m_master.kind(), host.data(), host.size() * sizeof(float));
  }
  refresh_params_from_master();
}

EngineMath& Engine::math(MemoryKind kind) const { return on_gpu(kind) ? *m_gpu_math : *m_host_math; }

bool Engine::on_gpu(MemoryKind kind) const { return m_gpu_math && kind == MemoryKind::device; }

void Engine::copy_in(void* dst, MemoryKind dst_kind, const void* host_src, size_t bytes) {
  if (!on_gpu(dst_kind)) {
    std::memcpy(dst, host_src, bytes);
    return;
  }
  m_device.copy(dst, host_src, bytes, m_device.compute_stream());
  m_device.compute_stream().synchronize();
}

void Engine::copy_out(void* host_dst, const void* src, MemoryKind src_kind, size_t bytes) const {
  if (!on_gpu(src_kind)) {
    std::memcpy(host_dst, src, bytes);
    return;
  }
  m_device.copy(host_dst, src, bytes, m_device.compute_stream());
  m_device.compute_stream().synchronize();
}

// master (fp32, optimizer space) -> compute-dtype params: stage 0 writes the full buffers directly;
// stage 1/2 write the shard and all-gather every unit; stage 3 writes the shard and marks gathered
// copies stale (persistent units are re-gathered at once).
void Engine::refresh_params_from_master() {
  if (m_options.stage == 0) {
    math(m_master.kind()).convert_scaled(m_full_flat.data(), m_options.compute_dtype, m_master.data(), DType::f32,
                                         m_space_numel, 1.0f);
    return;
  }
  if (m_master.kind() == m_shard16.kind() || !on_gpu(m_master.kind())) {
    if (on_gpu(m_shard16.kind()) && !on_gpu(m_master.kind())) {
      // offloaded master, shard on the GPU: convert on the host, then copy
      device::Buffer host16 = m_device.alloc(m_shard16.bytes(), MemoryKind::host);
      m_host_math->convert_scaled(host16.data(), m_options.compute_dtype, m_master.data(), DType::f32, m_space_numel, 1.0f);
      m_device.copy(m_shard16.data(), host16.data(), host16.bytes(), m_device.compute_stream());
      m_device.compute_stream().synchronize();
    } else {
      math(m_master.kind()).convert_scaled(m_shard16.data(), m_options.compute_dtype, m_master.data(), DType::f32,
                                           m_space_numel, 1.0f);
    }
  } else {
    DS_CHECK(false, "master weights on the GPU with the shard in host memory is not a supported layout");
  }
  post_step_gather();
}

// ---- stage 3 gathering ------------------------------------------------------------------------

void Engine::start_gather(int unit) {
  auto& us = *m_units[static_cast<size_t>(unit)];
  DS_CHECK(m_options.stage == 3 && us.status == UnitStatus::released);
  const auto& up = m_partition.unit(unit);
  us.full = m_device.alloc(static_cast<size_t>(up.padded) * m_esize, MemoryKind::device);
  us.full_ptr = us.full.data();
  track(m_memory.params_full, static_cast<int64_t>(us.full.bytes()));
  const void* send = m_shard16.as<std::byte>() + up.shard_offset * static_cast<int64_t>(m_esize);
  if (m_shard16.kind() != MemoryKind::device) {
    // offload_param: the shard lives in host memory; collectives read device memory.
    us.gather_send = m_device.alloc(static_cast<size_t>(up.slice) * m_esize, MemoryKind::device);
    track(m_memory.buckets, static_cast<int64_t>(us.gather_send.bytes()));
    m_device.copy(us.gather_send.data(), send, us.gather_send.bytes(), m_device.compute_stream());
    m_device.compute_stream().synchronize();
    send = us.gather_send.data();
  }
  us.gather_work = m_comm.all_gather(send, us.full_ptr, up.slice, m_options.compute_dtype);
  us.status = UnitStatus::gathering;
  m_live_numel += up.padded;
  m_inflight_numel += up.padded;
}

void Engine::wait_gather(int unit) {
  auto& us = *m_units[static_cast<size_t>(unit)];
  if (us.status != UnitStatus::gathering) return;
  us.gather_work->wait();
  us.gather_work.reset();
  if (us.gather_send) {
    track(m_memory.buckets, -static_cast<int64_t>(us.gather_send.bytes()));
    us.gather_send.reset();
  }
  us.status = UnitStatus::available;
  m_inflight_numel -= m_partition.unit(unit).padded;
}

void Engine::ensure_gathered(int unit) {
  auto& us = *m_units[static_cast<size_t>(unit)];
  if (us.status == UnitStatus::released) start_gather(unit);
  wait_gather(unit);
}

void Engine::release_unit(int unit) {
  auto& us = *m_units[static_cast<size_t>(unit)];
  if (m_options.stage != 3 || us.status == UnitStatus::released) return;
  wait_gather(unit);
  track(m_memory.params_full, -static_cast<int64_t>(us.full.bytes()));
  m_live_numel -= m_partition.unit(unit).padded;
  us.full.reset();
  us.full_ptr = nullptr;
  us.status = UnitStatus::released;
}

// Stage 3 keeps a unit gathered after a module used it when it is persistent, or when the next
// module to read it runs within max_reuse_distance elements of other modules' params (DeepSpeed's
// stage3_max_reuse_distance); otherwise it is released at once.
bool Engine::should_keep(int unit, int position) const {
  if (m_units[static_cast<size_t>(unit)]->persistent) return true;
  const int positions = static_cast<int>(m_position_numel.size());
  const int n_modules = positions / 2;
  int64_t distance = 0;
  for (int k = position + 1; k < positions; ++k) {
    const int m = k < n_modules ? k : positions - 1 - k;
    const auto& units = m_units_of_module[static_cast<size_t>(m)];
    if (std::find(units.begin(), units.end(), unit) != units.end()) return distance <= m_options.max_reuse_distance;
    distance += m_position_numel[static_cast<size_t>(k)];
  }
  return false;  // no further use before the step, which changes the params anyway
}

// Gathers the units of upcoming modules ahead of time, in execution order, while at most
// prefetch_bucket_size elements are in flight and max_live_parameters are gathered.
void Engine::prefetch_after(int position) {
  const int positions = static_cast<int>(m_position_numel.size());
  const int n_modules = positions / 2;
  for (int k = position + 1; k < positions; ++k) {
    const int m = k < n_modules ? k : positions - 1 - k;
    for (int u : m_units_of_module[static_cast<size_t>(m)]) {
      auto& us = *m_units[static_cast<size_t>(u)];
      if (us.status != UnitStatus::released) continue;
      const int64_t n = m_partition.unit(u).padded;
      if (m_inflight_numel + n > m_options.prefetch_bucket_size) return;
      if (m_live_numel + n > m_options.max_live_parameters) return;
      start_gather(u);
    }
  }
}

// ---- ParamAccess ------------------------------------------------------------------------------

void Engine::begin_forward(int module) {
  m_position = module;
  if (m_options.stage != 3) return;
  for (int u : m_units_of_module[static_cast<size_t>(module)]) ensure_gathered(u);
  prefetch_after(m_position);
}

void Engine::end_forward(int module) {
  if (m_options.stage != 3) return;
  for (int u : m_units_of_module[static_cast<size_t>(module)])
    if (!should_keep(u, module)) release_unit(u);
}

void Engine::begin_backward(int module) {
  const int n_modules = static_cast<int>(m_layout.modules.size());
  m_position = 2 * n_modules - 1 - module;
  if (m_options.stage != 3) return;
  for (int u : m_units_of_module[static_cast<size_t>(module)]) ensure_gathered(u);
  prefetch_after(m_position);
}

void Engine::end_backward(int module) {
  const int n_modules = static_cast<int>(m_layout.modules.size());
  const int position = 2 * n_modules - 1 - module;
  for (int u : m_units_of_module[static_cast<size_t>(module)]) {
    if (m_grad_ready_module[static_cast<size_t>(u)] == module) grads_ready(u);
    if (m_options.stage == 3 && !should_keep(u, position)) release_unit(u);
  }
  if (module == 0) {  // the micro-step's backward is complete
    ++m_micro_step;
    const bool boundary = m_micro_step == m_options.grad_accum_steps;
    if (m_options.stage >= 2 || boundary) flush_bucket();
  }
}

TensorRef Engine::param(model::ParamId p) {
  const auto& info = m_layout.params[static_cast<size_t>(p)];
  auto& us = *m_units[static_cast<size_t>(info.unit)];
  DS_CHECK(us.status == UnitStatus::available, "param ", info.name, " read while its unit is not gathered (module order?)");
  return {static_cast<std::byte*>(us.full_ptr) + m_layout.unit_offset(p) * static_cast<int64_t>(m_esize),
          m_options.compute_dtype, info.numel};
}

TensorRef Engine::grad(model::ParamId p) {
  const auto& info = m_layout.params[static_cast<size_t>(p)];
  auto& us = *m_units[static_cast<size_t>(info.unit)];
  if (!us.grad_ptr) {
    TensorRef full = alloc_grad_full(info.unit);
    us.grad_ptr = full.data;
  }
  return {static_cast<std::byte*>(us.grad_ptr) + m_layout.unit_offset(p) * static_cast<int64_t>(m_esize),
          m_options.compute_dtype, info.numel};
}

float Engine::backward_scale() const {
  return static_cast<float>(m_scaler.scale() / static_cast<double>(m_options.grad_accum_steps));
}

// ---- element-wise helpers ------------------------------------------------------------------------

void convert_scaled(void* dst, DType dst_type, const void* src, DType src_type, int64_t n, float scale) {
  visit_dtype(dst_type, [&](auto d) {
    using D = decltype(d);
    visit_dtype(src_type, [&](auto s) {
      using S = decltype(s);
      D* out = static_cast<D*>(dst);
      const S* in = static_cast<const S*>(src);
      parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
        if (scale == 1.0f)
          for (int64_t i = b; i < e; ++i) out[i] = from_float<D>(to_float(in[i]));
        else
          for (int64_t i = b; i < e; ++i) out[i] = from_float<D>(to_float(in[i]) * scale);
      });
    });
  });
}

void accumulate_f32(float* dst, const void* src, DType src_type, int64_t n) {
  visit_dtype(src_type, [&](auto s) {
    using S = decltype(s);
    const S* in = static_cast<const S*>(src);
    parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) dst[i] += to_float(in[i]);
    });
  });
}

}  // namespace ds::zero
