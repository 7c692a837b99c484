#include "zero/estimate_run.hpp"

#include <variant>

#include "model/gpt.hpp"
#include "model/gpt_config.hpp"
#include "config/config_text.hpp"
#include "device/device.hpp"
#include "base/error.hpp"
#include "zero/estimate.hpp"
#include "zero/train_options.hpp"
#include "zero/worker_cli.hpp"

namespace ds::zero {

#if DS_HAVE_CUDA
constexpr bool k_cuda_built = true;
#else
constexpr bool k_cuda_built = false;
#endif

std::string estimate_for_run(const std::vector<std::string>& worker_args, int ranks_per_node, int nodes) {
  const WorkerCommand cmd = parse_worker_command(worker_args);
  const auto* train = std::get_if<TrainOptions>(&cmd.command);
  if (!train) throw UsageError("--estimate needs a training command: dsworker [train] FLAGS");
  const model::GptConfig mc = model::parse_model_spec(train->model);
  const int T = train->seq_len.value_or(mc.seq_len);
  const int world = ranks_per_node * nodes;
  nlohmann::json raw = train->config_path ? config::parse_config_text(config::read_config_file(*train->config_path), *train->config_path)
                                          : nlohmann::json::object();
  add_flag_driven_keys(raw, *train, train->config_path.has_value());
  config::DsConfig cfg = config::load_ds_config(raw, auto_values(*train, mc.n_embd), world, nullptr,
                                                  train->config_path.value_or("dsworker flags"));
  if (train->stage) cfg.zero.stage = *train->stage;
  const model::ModelLayout layout = model::gpt_layout(mc);
  const EngineOptions eo = engine_options(cfg, layout, {});

  EstimateInput in;
  in.model_name = model::describe(mc);
  in.params = layout.total_numel();
  for (const auto& u : layout.units) in.largest_unit = std::max(in.largest_unit, u.numel);
  // The GPU backend keeps flash attention's state and fuses GELU (model::ActivationOptions).
  const bool gpu = train->device == "cuda" || (train->device == "auto" && k_cuda_built && device::cuda_device_count() > 0);
  in.activation_bytes = model::Gpt::activation_bytes(mc, eo.compute_dtype, static_cast<int>(cfg.batch.micro_batch), T,
                                                     {.flash = gpu, .checkpointing = train->activation_checkpointing});
  in.gpus_per_node = ranks_per_node;
  in.nodes = nodes;
  in.compute_dtype = eo.compute_dtype;
  in.comm_dtype = eo.comm_dtype;
  in.options = eo;
  const std::string batch = "micro-batch " + std::to_string(cfg.batch.micro_batch) + " x " + std::to_string(T) +
                            " tokens, accumulation " + std::to_string(cfg.batch.grad_accum);
  std::string out = format_estimate_table(in, estimate_all(in), batch);
  const MemoryEstimate mine = estimate_memory(in, eo.stage, eo.offload_optimizer, eo.offload_param);
  const auto host = device::host_memory_info();
  out += "\nThis run: " + describe_choice(mine) + ", " + format_gib(mine.device_bytes) + " per rank on its device and " +
         format_gib(mine.host_bytes) + " of host memory per rank; this host has " + format_gib(static_cast<int64_t>(host.free_bytes)) +
         " available (on CPU ranks both come from it).\n";
  return out;
}

}  // namespace ds::zero
