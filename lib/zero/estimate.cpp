#include "zero/estimate.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "zero/partition.hpp"

namespace ds::zero {
namespace {

constexpr double k_ds_buffer_factor = 1.5;  // DeepSpeed's additional_buffer_factor

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

std::string describe_choice(const MemoryEstimate& e) {
  std::string s = "ZeRO-" + std::to_string(e.stage);
  if (e.offload_optimizer == OffloadDevice::cpu) s += " + offload_optimizer=cpu";
  if (e.offload_param == OffloadDevice::cpu) s += " + offload_param=cpu";
  return s;
}

// Mirrors Engine::allocate() and the transient buffers (engine.cpp, engine_grads.cpp):
//   params_full   stage 0-2: e·P (every unit, padded); stage 3: the gathered units at the peak
//   grads_full    stage 0/1: e·P, kept across micro-steps; stage 2/3: units whose backward is
//                 running or whose reduction is in flight
//   shard16       stage 1-3: e·S (stage 3: on the host with offload_param)
//   optimizer     master + exp_avg + exp_avg_sq: 12·(stage 0: P, else S) (host with offload_optimizer)
//   grad_accum    fp32: 4·(stage 0: P, else S) (host with offload_optimizer)
//   staging16     offload_optimizer without offload_param: e·S on the host
//   buckets       packed reduction buffers: c·min(bucket, P), two in flight with overlap_comm, plus
//                 their reduce-scatter output (1/N of it)
//   activations   the model's, for one micro-batch
// where P is Ψ padded per unit (≈ Ψ), S = P/N, e the compute dtype's size and c the comm dtype's.
MemoryEstimate estimate_memory(const EstimateInput& in, int stage, OffloadDevice offload_optimizer, OffloadDevice offload_param) {
  MemoryEstimate r;
  r.stage = stage;
  r.offload_optimizer = offload_optimizer;
  r.offload_param = stage == 3 ? offload_param : OffloadDevice::none;
  const int64_t world = static_cast<int64_t>(in.gpus_per_node) * in.nodes;
  const int64_t e = static_cast<int64_t>(dtype_size(in.compute_dtype));
  const int64_t c = static_cast<int64_t>(dtype_size(in.comm_dtype));
  // Per-unit padding adds at most world·k_shard_align per unit; a few hundred units at most.
  const int64_t P = in.params;
  const int64_t S = ceil_div(P, world);
  const int64_t L = std::max<int64_t>(in.largest_unit, 1);
  const auto& o = in.options;

  int64_t device = 0, host = 0;
  // params
  if (stage <= 2) {
    device += e * P;
  } else {
    // Gathered at the peak: with the default reuse distance (1e9 elements) a unit stays gathered
    // until its last use in backward, so models up to that size keep everything (as DeepSpeed).
    int64_t live;
    if (o.max_reuse_distance >= P) live = P;
    else live = std::min(P, std::max(2 * L, std::min(o.prefetch_bucket_size, o.max_live_parameters) + L));
    device += e * live;
    (r.offload_param == OffloadDevice::cpu ? host : device) += e * S;
  }
  if (stage == 1 || stage == 2) device += e * S;  // contiguous shard for the all-gather
  // grads
  const int64_t bucket = std::min(P, std::max<int64_t>(o.reduce_bucket_size, L));
  if (stage <= 1) device += e * P;
  else device += e * std::min(P, bucket + 2 * L);
  const int in_flight = o.overlap_comm == Overlap::yes ? 2 : 1;
  device += in_flight * (c * bucket + (stage == 0 ? 0 : c * ceil_div(bucket, world)));
  // optimizer and fp32 gradient accumulator
  const int64_t space = stage == 0 ? P : S;
  const int64_t opt_bytes = 16 * space;
  if (offload_optimizer == OffloadDevice::cpu && stage >= 1) {
    host += opt_bytes;
    if (r.offload_param != OffloadDevice::cpu) host += e * S;  // staging of updated params
  } else {
    device += opt_bytes;
  }
  device += in.activation_bytes;
  r.device_bytes = device;
  r.host_bytes = host;

  // DeepSpeed's formulas (model states only, zero_init=1), research §5.1.
  const int64_t g = in.gpus_per_node;
  const double f = k_ds_buffer_factor;
  const double gf = 1.0 / in.nodes;
  const bool ds_opt = offload_optimizer == OffloadDevice::cpu;
  if (stage <= 2) {
    if (ds_opt) {
      r.ds_gpu_bytes = 2 * P;
      r.ds_cpu_bytes = static_cast<int64_t>(static_cast<double>(P) * static_cast<double>(std::max<int64_t>(4 * world, 16)) * f);
    } else {
      r.ds_gpu_bytes = 2 * P + (stage == 0 ? 16 * P : 18 * P / world);
      r.ds_cpu_bytes = static_cast<int64_t>(static_cast<double>(P) * 4.0 * static_cast<double>(g) * f);
    }
  } else {
    const bool ds_param = r.offload_param == OffloadDevice::cpu;
    if (ds_param && ds_opt) {
      r.ds_gpu_bytes = 4 * L;
      r.ds_cpu_bytes = static_cast<int64_t>(18.0 * static_cast<double>(P) * gf * f);
    } else if (ds_opt) {
      r.ds_gpu_bytes = 4 * L + 2 * P / world;
      r.ds_cpu_bytes = static_cast<int64_t>(16.0 * static_cast<double>(P) * gf * f);
    } else {
      r.ds_gpu_bytes = 4 * L + 18 * P / world;
      r.ds_cpu_bytes = static_cast<int64_t>(4.0 * static_cast<double>(L) * static_cast<double>(g) * f);
    }
  }
  return r;
}

std::vector<MemoryEstimate> estimate_all(const EstimateInput& in) {
  std::vector<MemoryEstimate> rows;
  rows.push_back(estimate_memory(in, 0, OffloadDevice::none, OffloadDevice::none));
  for (int stage = 1; stage <= 3; ++stage) {
    rows.push_back(estimate_memory(in, stage, OffloadDevice::none, OffloadDevice::none));
    rows.push_back(estimate_memory(in, stage, OffloadDevice::cpu, OffloadDevice::none));
  }
  rows.push_back(estimate_memory(in, 3, OffloadDevice::cpu, OffloadDevice::cpu));
  return rows;
}

std::string format_estimate_table(const EstimateInput& in, const std::vector<MemoryEstimate>& rows,
                                  const std::string& batch_description) {
  std::ostringstream out;
  char line[256];
  out << "Memory estimate for " << in.model_name << ": " << in.params << " parameters, largest unit " << in.largest_unit
      << " elements\n";
  out << "World: " << in.nodes << " node(s) x " << in.gpus_per_node << " rank(s); " << dtype_name(in.compute_dtype)
      << " params and gradients, fp32 master weights and Adam moments; " << batch_description << " (activations "
      << format_gib(in.activation_bytes) << " per rank)\n\n";
  std::snprintf(line, sizeof line, "| %-5s | %-17s | %-13s | %14s | %15s | %17s | %18s |\n", "stage", "offload_optimizer",
                "offload_param", "per GPU (ours)", "per host (ours)", "DeepSpeed per GPU", "DeepSpeed per host");
  out << line;
  out << "|-------|-------------------|---------------|----------------|-----------------|-------------------|--------------------|\n";
  for (const auto& r : rows) {
    const int64_t host_node = r.host_bytes * in.gpus_per_node;
    std::snprintf(line, sizeof line, "| %-5d | %-17s | %-13s | %14s | %15s | %17s | %18s |\n", r.stage,
                  r.offload_optimizer == OffloadDevice::cpu ? "cpu" : "none", r.offload_param == OffloadDevice::cpu ? "cpu" : "none",
                  format_gib(r.device_bytes).c_str(), format_gib(host_node).c_str(), format_gib(r.ds_gpu_bytes).c_str(),
                  format_gib(r.ds_cpu_bytes).c_str());
    out << line;
  }
  out << "\n\"ours\" counts what dsworker allocates (params, gradients, optimizer states, reduction buffers) plus activations;\n"
         "per host = per-rank host memory x ranks per node. DeepSpeed's columns are its estimate_zero2/zero3 formulas\n"
         "(model states only, zero_init=1, buffer factor 1.5). On CPU ranks the GPU column is host memory too.\n";
  return out.str();
}

}  // namespace ds::zero
