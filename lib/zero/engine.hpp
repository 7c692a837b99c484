// The ZeRO engine: data parallelism with optimizer states (stage 1), gradients (stage 2) and
// parameters (stage 3) partitioned across ranks, and optional CPU offload of the optimizer
// (stages 1-3) and of parameter shards (stage 3). DESIGN.md §3; docs/zero.md explains the stages.
//
// The engine implements model::ParamAccess: the model calls begin/end_forward and
// begin/end_backward around every module, and reads params and accumulates grads through it. At
// every gradient-accumulation boundary the training loop calls step().
//
// Data layout: Note [unit sharding] in partition.hpp. Per unit, stages 0-2 keep the full
// (gathered) params in one flat buffer for the whole model; stage 3 keeps only this rank's shard
// and gathers a unit into a temporary full buffer around the modules that read it. The fp32 master
// weights, Adam moments and the fp32 gradient accumulator cover the "optimizer space": the whole
// model for stage 0 (every rank holds and updates everything, plain data parallelism), this rank's
// shard for stages 1-3.
//
// Note [reduction order]. Gradients are pre-divided by the world size and reduced in buckets packed
// rank-major (for each rank, its slices of the bucket's units), so every element is reduced as
// element of chunk "owner rank" (Note [ring chunks] in runtime/comm.hpp). Stage 0's all-reduce and
// stage 1-3's reduce-scatter therefore add every element in the same order, whatever the bucket
// boundaries; the global gradient norm is summed per owner slice in fixed blocks and over ranks in
// rank order, in every stage. With fp32 and one micro-step per step, stages 0-3 produce bitwise
// identical parameters (tests/mp asserts it); with accumulation, stages 0/1 reduce the accumulated
// gradient once while stages 2/3 reduce every micro-step, so they agree within rounding.
//
// Threads: every method is called from the training thread. Collectives run on the communicator's
// own thread (runtime/comm.hpp), which is how reduction overlaps backward compute (overlap_comm).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/params.hpp"
#include "comm/comm.hpp"
#include "device/device.hpp"
#include "zero/engine_math.hpp"
#include "zero/engine_options.hpp"
#include "zero/loss_scaler.hpp"
#include "zero/lr_schedule.hpp"
#include "zero/partition.hpp"

namespace ds::zero {

// One stretch of the optimizer space that belongs to one unit: unit elements
// [unit_begin, unit_begin + count) live at space_offset.
struct SpaceSegment {
  int unit = 0;
  int64_t unit_begin = 0;
  int64_t count = 0;
  int64_t space_offset = 0;
};

// A run of optimizer-space elements stepped with one param group's hyper-parameters.
struct GroupRun {
  int64_t space_offset = 0;
  int64_t count = 0;
  int group = 0;
};

// Bytes this rank holds, by role; `peak` since construction or reset_peaks().
struct MemoryReport {
  struct Entry {
    int64_t current = 0;
    int64_t peak = 0;
  };
  Entry params_full;      // gathered / replicated params (compute dtype)
  Entry params_shard;     // this rank's param shard (stage 3; host memory with offload_param)
  Entry grads_full;       // full gradient buffers (compute dtype; plus the fp32 sum of grad_accum_dtype fp32)
  Entry grad_accum;       // fp32 gradient accumulator over the optimizer space
  Entry optimizer;        // fp32 master + Adam moments over the optimizer space
  Entry buckets;          // packed reduction buffers in flight
  int64_t device_peak = 0;
  int64_t host_peak = 0;  // pinned + pageable host memory allocated through the device (offload)
  int64_t total_current() const;
  int64_t total_peak_sum() const;   // sum of per-role peaks (an upper bound of the real peak)
  nlohmann::json to_json() const;
};

struct StepResult {
  bool applied = true;        // false: skipped (fp16 overflow)
  double grad_norm = 0.0;     // global L2 norm of the unscaled gradient (-1 when non-finite)
  double loss_scale = 1.0;    // scale used for this step's backward
  double next_loss_scale = 1.0;
  std::chrono::duration<double> reduce_wait{0}, optimizer{0}, gather{0};
  // What the step issued, so tests and logs can see the bucket settings at work: stage 1/2
  // all-gathers of the updated params (allgather_bucket_size), and optimizer tiles (stage 3:
  // sub_group_size; 1 otherwise).
  int64_t gather_collectives = 0;
  int64_t optimizer_tiles = 0;
};

class Engine final : public model::ParamAccess {
 public:
  // Allocates every buffer of this rank's role and initialises params from `seed` (each rank only
  // its optimizer space: stage 3 never materialises the whole model). Collective: every rank
  // constructs its engine in the same order. Throws ResourceError when memory does not suffice.
  Engine(const EngineOptions& options, const model::ModelLayout& layout, comm::Comm& comm,
         device::Device& device, uint64_t seed);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // ---- model::ParamAccess ----
  void begin_forward(int module) override;
  void end_forward(int module) override;
  void begin_backward(int module) override;
  void end_backward(int module) override;
  TensorRef param(model::ParamId p) override;
  TensorRef grad(model::ParamId p) override;

  // The factor the model's backward must multiply d(loss) by this micro-step: loss scale / accumulation.
  float backward_scale() const;

  // At the accumulation boundary (after grad_accum_steps micro-steps): finishes the reductions,
  // checks for overflow / non-finite gradients, clips, steps the optimizer with each group's lr
  // (and OneCycle's beta1/beta2 when set) from the schedule, re-gathers params. Collective. Throws
  // NumericsError for a non-finite bf16/fp32 gradient or a loss scale at its minimum.
  StepResult step(const std::vector<GroupValues>& groups);

  // ---- state ----
  const EngineOptions& options() const { return m_options; }
  const Partition& partition() const { return m_partition; }
  const model::ModelLayout& layout() const { return m_layout; }
  int64_t steps_applied() const { return m_steps_applied; }
  int64_t steps_skipped() const { return m_steps_skipped; }
  const LossScaler& loss_scaler() const { return m_scaler; }
  MemoryReport memory() const;
  void reset_memory_peaks();

  // ---- checkpoint support (checkpoint.cpp) ----
  nlohmann::json state_json() const;              // step counts and loss scaler (same on every rank)
  void load_state_json(const nlohmann::json& state);

  enum class StateTensor { master, exp_avg, exp_avg_sq };
  // This rank's owned, unpadded slice of unit u: [begin, begin + count) of the unit's flat buffer
  // (Partition::owned_range). Over all ranks these slices cover the model exactly once, in every
  // stage (stage 0 ranks hold everything but own, for saving, the same slices as stage 1-3 ranks).
  std::pair<int64_t, int64_t> owned_slice(int unit) const { return m_partition.owned_range(unit, m_rank); }
  // Copies `count` fp32 values of a state tensor of unit u starting at unit element `begin` (which
  // must lie in this rank's optimizer space) to host memory.
  void read_state(int unit, int64_t begin, int64_t count, StateTensor which, float* host_out) const;
  // Overwrites this rank's whole optimizer space through `reader` (called for every unit stretch
  // the space holds, clipped to the unit's unpadded size), zeroes gradients, then refreshes the
  // compute-dtype params exactly as after a step. Collective.
  using SliceReader = std::function<void(int unit, int64_t begin, int64_t count, StateTensor which, float* out)>;
  void load_optimizer_space(const SliceReader& reader);

 private:
  struct UnitState;
  struct PendingReduction;

  // layout of the optimizer space
  void build_space();
  // buffers
  void allocate();
  void init_from_seed(uint64_t seed);
  void refresh_params_from_master();  // master -> compute-dtype params (+ gather for stage 1/2)
  // stage 3 gathering
  void ensure_gathered(int unit);
  void start_gather(int unit);
  void wait_gather(int unit);
  void release_unit(int unit);
  void prefetch_after(int position);
  bool should_keep(int unit, int position) const;
  // gradients
  TensorRef alloc_grad_full(int unit);
  void grads_ready(int unit);
  void flush_bucket();
  void finish_reductions();
  void complete_reduction(PendingReduction& pending);
  void zero_grads();
  // step parts
  bool check_overflow_and_find_nonfinite(std::string* where);
  double global_grad_norm();
  void optimizer_step(double combined_scale, const std::vector<GroupValues>& groups);
  void post_step_gather();
  void gather_param_buckets();  // stage 1/2 (Note [allgather buckets] in engine_step.cpp)

  void track(MemoryReport::Entry& entry, int64_t delta) const;
  // The math for buffers of this memory kind (zero/engine_math.hpp): the GPU's for device memory
  // of a CUDA device, the host's otherwise.
  EngineMath& math(device::MemoryKind kind) const;
  bool on_gpu(device::MemoryKind kind) const;
  // Host <-> any-buffer copies of fp32 state that wait (checkpoints, initialisation).
  void copy_in(void* dst, device::MemoryKind dst_kind, const void* host_src, size_t bytes);
  void copy_out(void* host_dst, const void* src, device::MemoryKind src_kind, size_t bytes) const;

  EngineOptions m_options;
  model::ModelLayout m_layout;
  comm::Comm& m_comm;
  device::Device& m_device;
  Partition m_partition;
  int m_world = 1;
  int m_rank = 0;
  size_t m_esize = 4;                       // bytes per compute-dtype element

  std::vector<SpaceSegment> m_segments;     // the optimizer space, unit by unit
  std::vector<GroupRun> m_runs;             // group runs over the optimizer space (padding excluded)
  int64_t m_space_numel = 0;
  std::vector<int64_t> m_full_offset;       // stage 0-2: unit u's full buffer inside m_full_flat
  std::vector<int> m_grad_ready_module;     // unit -> module whose end_backward completes its grad
  std::vector<std::vector<int>> m_units_of_module;
  std::vector<int64_t> m_position_numel;    // per execution position: elements its module reads

  std::vector<std::unique_ptr<UnitState>> m_units;
  device::Buffer m_full_flat;              // stage 0-2: every unit's full params (compute dtype)
  device::Buffer m_grad_flat;              // stage 0/1: every unit's full gradient, kept across micro-steps
  device::Buffer m_grad_sum32;             // stage 0/1 with grad_accum_dtype fp32 (16-bit training): the fp32 sum
  device::Buffer m_shard16;                // stage 1-3: this rank's params, compute dtype
  device::Buffer m_master, m_exp_avg, m_exp_avg_sq, m_grad_accum;   // fp32, optimizer space
  device::Buffer m_staging16;              // offload: host copy of updated 16-bit params

  // gradient buckets
  std::vector<int> m_bucket_units;
  int64_t m_bucket_numel = 0;
  std::deque<std::unique_ptr<PendingReduction>> m_pending;

  // stage 3 gathering state
  int m_position = 0;                       // execution position of the running module
  int64_t m_live_numel = 0;                 // elements of gathered (or in-flight) units
  int64_t m_inflight_numel = 0;

  LossScaler m_scaler;
  int m_micro_step = 0;                     // micro-steps since the last boundary
  int64_t m_steps_applied = 0, m_steps_skipped = 0;
  std::vector<int64_t> m_group_steps;       // Adam step count per group
  int64_t m_gather_collectives = 0;         // stage 1/2 param all-gathers issued since construction
  int64_t m_optimizer_tiles = 0;            // optimizer tiles stepped since construction
  mutable MemoryReport m_memory;
  std::unique_ptr<device::Stream> m_copy_stream;
  std::unique_ptr<EngineMath> m_host_math, m_gpu_math;
};

}  // namespace ds::zero
