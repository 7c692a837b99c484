#include "zero/trainer.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "model/data.hpp"
#include "model/gpt.hpp"
#include "base/atomic_file.hpp"
#include "comm/comm_gloo.hpp"
#include "comm/comm_single.hpp"
#include "comm/comm_staged.hpp"
#include "config/config_text.hpp"
#include "device/device.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "base/parallel.hpp"
#include "store/store_barrier.hpp"
#include "store/store_client.hpp"
#include "comm/world.hpp"
#include "zero/checkpoint.hpp"
#include "zero/engine.hpp"
#include "zero/estimate.hpp"
#include "zero/lr_schedule.hpp"
#include "zero/progress.hpp"

#if DS_HAVE_CUDA
#include "model/cuda/ops_cuda.hpp"
#endif

namespace ds::zero {
namespace {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

std::unique_ptr<store::StoreClient> connect_store(const comm::World& w) {
  if (w.launched_by_dslaunch())
    return std::make_unique<store::StoreClient>(store::StoreClientOptions{.host = w.store_addr,
                                                                              .port = static_cast<uint16_t>(w.store_port),
                                                                              .token = w.token,
                                                                              .timeout = w.rendezvous_timeout,
                                                                              .connect_timeout = w.rendezvous_timeout});
  if (w.alone()) return nullptr;
  // Started by another launcher (torchrun, deepspeed): its store at MASTER_ADDR:MASTER_PORT.
  if (w.master_addr.empty() || w.master_port == 0)
    throw UsageError("WORLD_SIZE=" + std::to_string(w.world_size) +
                     " but MASTER_ADDR/MASTER_PORT are not set: start dsworker through dslaunch (or torchrun), which sets them");
  return std::make_unique<store::StoreClient>(store::StoreClientOptions{
      .host = w.master_addr, .port = static_cast<uint16_t>(w.master_port), .timeout = w.rendezvous_timeout,
      .connect_timeout = w.rendezvous_timeout});
}

struct LoadedConfig {
  config::DsConfig config;
  std::string source;
  std::vector<std::string> warnings;
};

// The config dslaunch shipped through the store wins (remote nodes need no copy of the file);
// then --deepspeed FILE; then flags alone.
LoadedConfig load_config(const TrainOptions& o, store::StoreClient* store, int world_size, int64_t hidden) {
  LoadedConfig out;
  const config::AutoValues av = auto_values(o, hidden);
  std::optional<std::string> text;
  if (store && o.config_path) {
    text = store->try_get("dslaunch/config");
    if (text) out.source = store->try_get("dslaunch/config_path").value_or(*o.config_path);
  }
  if (!text && o.config_path) {
    text = config::read_config_file(*o.config_path);
    out.source = *o.config_path;
  }
  nlohmann::json raw = text ? config::parse_config_text(*text, out.source) : nlohmann::json::object();
  if (!text) out.source = "dsworker flags";
  if (!raw.is_object()) throw ConfigError(out.source + ": the config must be a JSON object ({...})");
  add_flag_driven_keys(raw, o, text.has_value());
  out.config = config::load_ds_config(raw, av, world_size, &out.warnings, out.source);
  return out;
}

// --device auto: the GPU when this build has the CUDA kernels and a GPU is visible, else the CPU,
// said in one line. A rank uses GPU local_rank (modulo the GPUs visible: several ranks may share
// one GPU, e.g. the multi-rank tests on a one-GPU machine).
std::unique_ptr<device::Device> make_device(const TrainOptions& o, const comm::World& w) {
  if (o.device != "auto" && o.device != "cpu" && o.device != "cuda")
    throw UsageError("--device '" + o.device + "' is not one of auto, cpu, cuda");
  if (o.device == "cpu") return device::make_cpu_device();
  const int gpus = device::cuda_device_count();
#if DS_HAVE_CUDA
  const bool built = true;
#else
  const bool built = false;
#endif
  if (o.device == "auto" && (!built || gpus == 0)) {
    if (w.rank == 0)
      log::info(!built ? "this dsworker was built without CUDA: training on CPU ranks (--device cpu)"
                       : "no usable CUDA GPU is visible (CUDA_VISIBLE_DEVICES=" +
                             std::string(std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "<unset>") +
                             "): training on CPU ranks (--device cpu)");
    return device::make_cpu_device();
  }
  if (!built)
    throw ResourceError("--device cuda: this dsworker was built without CUDA; rebuild with the CUDA toolkit (nvcc) "
                        "or run with --device cpu");
  if (gpus == 0)
    throw ResourceError("--device cuda: no CUDA GPU is visible to rank " + std::to_string(w.rank) +
                        " (CUDA_VISIBLE_DEVICES=" +
                        std::string(std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "<unset>") +
                        "); run on a GPU host or with --device cpu");
  // More ranks than GPUs (DSLAUNCH_RANKS_PER_GPU): consecutive local ranks share a GPU.
  const int index = w.local_world_size > gpus ? w.local_rank * gpus / w.local_world_size : w.local_rank % gpus;
  return device::make_cuda_device(index);
}

model::Gpt make_model(const model::GptConfig& mc, DType dtype, device::Device& device) {
#if DS_HAVE_CUDA
  if (device.kind() == device::DeviceKind::cuda) return model::Gpt(mc, dtype, model::cuda::make_cuda_ops(device, dtype));
#endif
  (void)device;
  return model::Gpt(mc, dtype);
}

// Refuses to start when this node's ranks together would not fit the memory there is: a clear
// message now instead of the OOM killer later.
void preflight(const EstimateInput& in, const EngineOptions& eo, device::Device& device, int local_ranks) {
  const MemoryEstimate need = estimate_memory(in, eo.stage, eo.offload_optimizer, eo.offload_param);
  const auto host = device::host_memory_info();
  const bool cpu = device.kind() == device::DeviceKind::cpu;
  const int64_t host_need = (need.host_bytes + (cpu ? need.device_bytes : 0)) * local_ranks;
  const int64_t host_free = static_cast<int64_t>(host.free_bytes);
  auto fits = [&](const MemoryEstimate& e) {
    const int64_t h = (e.host_bytes + (cpu ? e.device_bytes : 0)) * local_ranks;
    if (h > host_free) return false;
    return cpu || e.device_bytes <= static_cast<int64_t>(device.memory_info().free_bytes);
  };
  std::string problem;
  if (host_need > host_free)
    problem = describe_choice(need) + " needs " + format_gib(host_need) + " of host memory for this node's " +
              std::to_string(local_ranks) + " rank(s) (" + format_gib(host_need / local_ranks) + " each), but " +
              format_gib(host_free) + " is available: short by " + format_gib(host_need - host_free);
  else if (!cpu && need.device_bytes > static_cast<int64_t>(device.memory_info().free_bytes))
    problem = describe_choice(need) + " needs " + format_gib(need.device_bytes) + " on " + device.name() + ", " +
              format_gib(static_cast<int64_t>(device.memory_info().free_bytes)) + " is free: short by " +
              format_gib(need.device_bytes - static_cast<int64_t>(device.memory_info().free_bytes));
  if (problem.empty()) return;
  std::string options;
  for (const auto& row : estimate_all(in))
    if (fits(row)) options += (options.empty() ? "" : ", ") + describe_choice(row) + " (" + format_gib(row.device_bytes + row.host_bytes) + " per rank)";
  throw ResourceError(problem + "; " +
                      (options.empty() ? std::string("no stage or offload choice fits: use a smaller model, a smaller --micro_batch, fewer ranks per host, or more hosts")
                                       : "these fit: " + options + "; or lower --micro_batch") +
                      " (dsworker estimate prints the whole table; --skip_memory_check skips this check)");
}

std::shared_ptr<const model::TokenDataset> open_data(const TrainOptions& o) {
  if (o.data.empty()) return std::make_shared<model::TokenDataset>(model::default_corpus_dataset());
  return std::make_shared<model::TokenDataset>(model::TokenDataset::open(o.data));
}

// Mean of a per-rank value over all ranks (for the reported loss).
double mean_over_ranks(comm::Comm& comm, double value) {
  float v = static_cast<float>(value);
  comm::all_reduce(comm, TensorRef{&v, DType::f32, 1}, comm::ReduceOp::sum);
  return static_cast<double>(v) / comm.size();
}

double evaluate(model::Gpt& gpt, Engine& engine, model::DataLoader& loader, comm::Comm& comm, int64_t batches,
                std::vector<int32_t>& inputs, std::vector<int32_t>& targets, int B, int T) {
  loader.reset();
  double sum = 0.0;
  for (int64_t b = 0; b < batches; ++b) {
    loader.next_micro_batch(inputs.data(), targets.data());
    sum += gpt.forward(engine, inputs.data(), targets.data(), B, T);
  }
  return mean_over_ranks(comm, sum / static_cast<double>(std::max<int64_t>(batches, 1)));
}

}  // namespace

void run_training(const TrainOptions& o) {
  const auto start_time = Clock::now();
  const comm::World w = comm::world_from_env();
  const bool leader = w.rank == 0;
  if (o.threads) set_num_threads(*o.threads);
  if (o.steps < 1) throw UsageError("--steps " + std::to_string(o.steps) + ": must be at least 1");

  model::GptConfig mc = model::parse_model_spec(o.model);
  const int T = o.seq_len.value_or(mc.seq_len);
  if (T < 1 || T > mc.seq_len)
    throw UsageError("--seq_len " + std::to_string(T) + " must be between 1 and the model's seq_len " + std::to_string(mc.seq_len) +
                     " (pass --model '" + o.model + ",seq_len=" + std::to_string(T) + "' for a longer context)");

  auto store = connect_store(w);
  LoadedConfig loaded = load_config(o, store.get(), w.world_size, mc.n_embd);
  config::DsConfig& cfg = loaded.config;
  if (o.stage) {
    if (*o.stage < 0 || *o.stage > 3) throw UsageError("--zero_stage " + std::to_string(*o.stage) + ": use 0, 1, 2 or 3");
    cfg.zero.stage = *o.stage;
  }
  if (leader) {
    for (const auto& warning : loaded.warnings) log::warn(warning);
    log::info("ds_config from ", loaded.source, ", resolved: ", cfg.resolved_json().dump());
  }

  auto device = make_device(o, w);
  std::vector<ParamGroupOverride> overrides;
  for (const auto& g : o.param_groups) overrides.push_back(parse_param_group(g));
  model::Gpt gpt(mc, DType::f32);  // the layout does not depend on the dtype; rebuilt below with the real one
  EngineOptions eo = engine_options(cfg, gpt.layout(), overrides);
  gpt = make_model(mc, eo.compute_dtype, *device);
  gpt.set_activation_checkpointing(o.activation_checkpointing);
  const auto& layout = gpt.layout();
  const int B = static_cast<int>(cfg.batch.micro_batch);
  const int64_t gas = cfg.batch.grad_accum;

  // Memory preflight, before anything big is allocated.
  EstimateInput est;
  est.model_name = mc.name;
  est.params = layout.total_numel();
  for (const auto& u : layout.units) est.largest_unit = std::max(est.largest_unit, u.numel);
  est.activation_bytes = gpt.activation_bytes(B, T);
  est.gpus_per_node = w.local_world_size;
  est.nodes = std::max(1, w.world_size / std::max(1, w.local_world_size));
  est.compute_dtype = eo.compute_dtype;
  est.comm_dtype = eo.comm_dtype;
  est.options = eo;
  if (!o.skip_preflight) preflight(est, eo, *device, w.local_world_size);

  // Collectives: every rank meets at a barrier first, so a missing rank is named here.
  std::unique_ptr<comm::Comm> comm;
  const std::string prefix = "dsworker/" + (w.run_id.empty() ? std::string("run") : w.run_id) + "/attempt_" +
                             std::to_string(w.restart_count);
  if (w.alone()) {
    comm = comm::make_single_rank_comm();
  } else {
    store::store_barrier(*store, prefix + "/start", w.world_size, w.rank, w.rendezvous_timeout);
    comm = comm::make_gloo_comm(*store, {.rank = w.rank, .size = w.world_size, .prefix = prefix + "/dp",
                                            .bind_host = "127.0.0.1"});  // one node for now (multi-node: this host's address)
    // Without NCCL (the multi-GPU issue), GPU ranks reduce through Gloo, staged through pinned memory.
    if (device->kind() == device::DeviceKind::cuda) comm = comm::make_device_staged_comm(std::move(comm), *device);
  }

  // What an interrupted save left behind is repaired before any rank reads or writes checkpoints:
  // a crash between the two renames of a re-save leaves the tag `latest` names moved aside
  // (Note [tag swap], checkpoint.cpp).
  if (leader) {
    std::error_code ec;
    for (const std::string& dir : {o.save_dir, o.resume})
      if (!dir.empty() && std::filesystem::is_directory(dir, ec))
        for (const std::string& line : recover_save_dir(dir)) log::info(line);
  }
  comm->barrier();

  Engine engine(eo, layout, *comm, *device, o.seed);

  auto data = open_data(o);
  const auto split = model::split_train_val(*data, T, o.val_fraction);
  model::DataLoader train_loader(data, {.seq_len = T, .micro_batch = B, .grad_accum = gas, .world_size = w.world_size,
                                        .rank = w.rank, .seed = o.seed, .order = model::SampleOrder::shuffled,
                                        .windows = split.train, .vocab_size = mc.vocab_size});
  model::DataLoader val_loader(data, {.seq_len = T, .micro_batch = B, .grad_accum = 1, .world_size = w.world_size,
                                      .rank = w.rank, .seed = o.seed, .order = model::SampleOrder::sequential,
                                      .windows = split.val, .vocab_size = mc.vocab_size});

  std::vector<double> initial_lrs;
  for (const auto& g : eo.optimizer.groups) initial_lrs.push_back(g.lr);
  LrSchedule schedule(schedule_options(cfg), initial_lrs);

  int64_t start_step = 0;
  int64_t tokens_seen = 0;
  if (!o.resume.empty()) {
    const std::string tag_dir = resolve_checkpoint_dir(o.resume);
    const nlohmann::json manifest = load_checkpoint(engine, tag_dir);
    const auto& t = manifest.at("trainer");
    start_step = t.at("step").get<int64_t>();
    tokens_seen = t.value("tokens", int64_t{0});
    schedule.load_json(t.at("scheduler"));
    train_loader.restore(t.at("data"));
    if (leader)
      log::info("resumed from ", tag_dir, " at step ", start_step, " (saved with ", manifest.at("world_size").get<int>(),
                " rank(s), ZeRO stage ", manifest.at("zero_stage").get<int>(), ")");
    if (start_step >= o.steps && leader) log::warn("the checkpoint is at step ", start_step, ", --steps is ", o.steps, ": nothing to train");
  }

  auto trainer_state = [&](int64_t step) {
    return nlohmann::json{{"step", step}, {"tokens", tokens_seen}, {"scheduler", schedule.to_json()},
                          {"data", train_loader.state()}, {"seed", o.seed}, {"model_spec", o.model}};
  };
  auto save = [&](int64_t step) {
    if (o.save_dir.empty()) return;
    const auto t0 = Clock::now();
    validate_checkpoint_tag(*comm, default_tag(step), cfg.checkpoint.tag_validation);
    const bool replaced = save_checkpoint(engine, *comm, o.save_dir, default_tag(step), mc, trainer_state(step), cfg.resolved_json());
    if (leader)
      log::info("checkpoint ", default_tag(step), " saved to ", o.save_dir, replaced ? " (replacing an earlier one of that tag)" : "",
                " in ", format_duration(Clock::now() - t0));
  };

  std::unique_ptr<MetricsWriter> metrics;
  if (leader && !o.metrics_path.empty()) metrics = std::make_unique<MetricsWriter>(o.metrics_path);
  ProgressPrinter progress({.total_steps = o.steps, .start_step = start_step,
                            .interval_steps = cfg.steps_per_print.value_or(o.log_interval),
                            .breakdown = cfg.wall_clock_breakdown,
                            .fp16 = eo.compute_dtype == DType::f16});
  if (leader)
    log::info("training ", describe(mc), ": ", layout.total_numel(), " parameters, ZeRO stage ", eo.stage,
              eo.offload_optimizer == OffloadDevice::cpu ? " + optimizer offload" : "",
              eo.offload_param == OffloadDevice::cpu ? " + param offload" : "",
              o.activation_checkpointing ? " + activation checkpointing" : "", ", ", dtype_name(eo.compute_dtype), ", ",
              w.world_size, " rank(s) on ", device->name(),
              device->kind() == device::DeviceKind::cpu ? std::string() : std::string(" (") + gpt.ops().name() + ")",
              ", global batch ", cfg.batch.train_batch_size, " x ", T,
              " tokens (micro-batch ", B, ", accumulation ", gas, "), ", num_threads(), " thread(s) per rank");

  std::vector<int32_t> inputs(static_cast<size_t>(B) * T), targets(static_cast<size_t>(B) * T);
  const int64_t tokens_per_step = cfg.batch.train_batch_size * T;
  double first_loss = NAN, last_loss = NAN, val_loss = NAN;
  for (int64_t step = start_step; step < o.steps; ++step) {
    StepTimes times;
    const auto step_start = Clock::now();
    double loss_sum = 0.0;
    for (int64_t k = 0; k < gas; ++k) {
      train_loader.next_micro_batch(inputs.data(), targets.data());
      const auto f0 = Clock::now();
      loss_sum += gpt.forward(engine, inputs.data(), targets.data(), B, T);
      const auto f1 = Clock::now();
      gpt.backward(engine, engine.backward_scale());
      times.forward += Seconds(f1 - f0).count();
      times.backward += Seconds(Clock::now() - f1).count();
    }
    const std::vector<GroupValues> group_values = schedule.group_values();
    std::vector<double> step_lrs;
    for (const auto& g : group_values) step_lrs.push_back(g.lr);
    const StepResult result = engine.step(group_values);
    if (result.applied) schedule.step();
    times.reduce_wait = result.reduce_wait.count();
    times.optimizer = result.optimizer.count();
    times.gather = result.gather.count();
    times.total = Seconds(Clock::now() - step_start).count();
    tokens_seen += tokens_per_step;
    const double loss = mean_over_ranks(*comm, loss_sum / static_cast<double>(gas));
    if (std::isnan(first_loss)) first_loss = loss;
    last_loss = loss;

    const bool last = step + 1 == o.steps;
    const bool eval = o.eval_interval > 0 && ((step + 1) % o.eval_interval == 0);
    if (eval) val_loss = evaluate(gpt, engine, val_loader, *comm, o.val_batches, inputs, targets, B, T);
    if (leader) {
      StepRecord rec{.step = step + 1, .loss = loss, .lrs = step_lrs,
                     .grad_norm = result.grad_norm, .loss_scale = result.loss_scale, .applied = result.applied,
                     .skipped_total = engine.steps_skipped(), .tokens = tokens_seen, .tokens_per_step = tokens_per_step,
                     .times = times, .memory = engine.memory(), .val_loss = eval ? std::optional<double>(val_loss) : std::nullopt};
      progress.step(rec, last);
      if (metrics) metrics->write(rec, Seconds(Clock::now() - start_time).count());
    }
    if (o.save_interval > 0 && (step + 1) % o.save_interval == 0 && !last) save(step + 1);
  }
  if (start_step < o.steps) {
    if (o.eval_interval == 0 || o.steps % o.eval_interval != 0)
      val_loss = evaluate(gpt, engine, val_loader, *comm, o.val_batches, inputs, targets, B, T);
    save(o.steps);
  }
  if (leader) {
    const double elapsed = Seconds(Clock::now() - start_time).count();
    log::info("done: ", o.steps - start_step, " steps in ", format_duration(Seconds(elapsed)), ", loss ", first_loss, " -> ", last_loss,
              ", validation loss ", val_loss, ", ", engine.steps_skipped(), " skipped step(s), peak memory ",
              format_bytes(engine.memory().total_peak_sum()), " (engine) / ", format_bytes(process_peak_rss_bytes()), " (process)");
    if (metrics) metrics->write_summary({{"event", "done"}, {"steps", o.steps}, {"final_loss", last_loss}, {"val_loss", val_loss},
                                         {"elapsed_s", elapsed}});
  }
  comm->barrier();
}

}  // namespace ds::zero
