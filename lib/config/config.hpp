// DeepSpeed's ds_config.json, read as it is: validated against the key table (config_schema.hpp),
// "auto" resolved from dsworker's flags the way the Hugging Face Trainer does, the batch triple
// inferred and checked the way DeepSpeed does, and DeepSpeed's code defaults (0.16.5) applied.
//
// Unlike DeepSpeed nothing wrong passes silently: an unknown key, a wrong type, a value out of range,
// a duplicate key, an unresolvable "auto" or inconsistent batch sizes throw ds::ConfigError naming
// the file, the JSON path, the value and the fix. Keys DeepSpeed knows that dsworker does not
// implement load with a warning naming them (returned to the caller, which prints them).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/dtype.hpp"

namespace ds::config {

enum class Precision : unsigned char { fp32, fp16, bf16 };
std::string_view precision_name(Precision p);  // "fp32", "fp16", "bf16"

// The dsworker flags that "auto" values come from; named in error messages ("pass --lr").
struct AutoFlagNames {
  std::string learning_rate = "--lr";
  std::string micro_batch = "--micro_batch_size";
  std::string grad_accum = "--grad_accum_steps";
  std::string adam_beta1 = "--adam_beta1";
  std::string adam_beta2 = "--adam_beta2";
  std::string adam_eps = "--adam_eps";
  std::string weight_decay = "--weight_decay";
  std::string max_grad_norm = "--max_grad_norm";
  std::string total_steps = "--total_steps";
  std::string warmup_steps = "--warmup_steps";
  std::string hidden_size = "--hidden_size";
  std::string precision = "--precision";
};

// Values from dsworker's command line that resolve "auto" (research §1.8). Contract: fill in only
// what the user set (or what dsworker wants to impose); a value given here that disagrees with a
// plain value in the config is an error, as in the Hugging Face Trainer ("Please correct the
// following DeepSpeed config values that mismatch TrainingArguments values"). hidden_size is the
// model's width (n_embd), known from the model, not a user choice.
struct AutoValues {
  std::optional<double> learning_rate;
  std::optional<int64_t> micro_batch;   // per rank, per micro-step
  std::optional<int64_t> grad_accum;
  std::optional<double> adam_beta1;
  std::optional<double> adam_beta2;
  std::optional<double> adam_eps;
  std::optional<double> weight_decay;
  std::optional<double> max_grad_norm;
  std::optional<int64_t> total_steps;   // optimizer steps of the whole run
  std::optional<int64_t> warmup_steps;
  std::optional<int64_t> hidden_size;
  std::optional<Precision> precision;
  AutoFlagNames flags;
  // dsworker's own defaults for the values above (its flags' defaults): used to resolve "auto"
  // (and the micro-batch of a config without batch keys) only where the value above is unset, and
  // never compared with plain config values — only what the user set is (the Trainer's check).
  std::shared_ptr<const AutoValues> defaults;
};

// ---- typed result --------------------------------------------------------------------------------

struct BatchConfig {
  int64_t train_batch_size = 0;  // = micro_batch * grad_accum * data-parallel world size
  int64_t micro_batch = 0;       // train_micro_batch_size_per_gpu
  int64_t grad_accum = 0;        // gradient_accumulation_steps
};

// DeepSpeed's DynamicLossScaler constructor arguments (research §2.1).
struct DynamicScalerArgs {
  double init_scale = 0;
  int64_t scale_window = 0;
  int64_t hysteresis = 0;        // DeepSpeed's delayed_shift
  bool consecutive_hysteresis = false;
  double min_scale = 0;
};

struct Fp16Config {
  bool enabled = false;
  bool auto_cast = false;
  double loss_scale = 0;          // 0: dynamic scaling; > 0: this static scale
  int64_t initial_scale_power = 16;
  int64_t loss_scale_window = 1000;
  int64_t hysteresis = 2;
  bool consecutive_hysteresis = false;
  double min_loss_scale = 1;
  bool master_weights_and_grads = false;
  // Research §1.2 quirk: DeepSpeed builds scaler arguments from the block only when at least one of
  // initial_scale_power, loss_scale_window, min_loss_scale, hysteresis, consecutive_hysteresis is
  // written in it; otherwise its ZeRO optimizers use DynamicLossScaler's constructor defaults.
  bool dynamic_args_given = false;

  bool dynamic() const { return loss_scale == 0; }
  // What DeepSpeed's ZeRO optimizers construct: the block's values when dynamic_args_given, else
  // init 2^32, window 1000, hysteresis 1, min scale 1, consecutive false.
  DynamicScalerArgs zero_scaler_args() const;
};

struct Bf16Config {
  bool enabled = false;
  bool immediate_grad_update = false;
};

struct PrecisionConfig {
  Precision compute = Precision::fp32;  // fp16 if fp16.enabled, bf16 if bf16.enabled, else fp32
  Fp16Config fp16;
  Bf16Config bf16;
};

enum class OptimizerType : unsigned char {
  adam, adamw,                                   // implemented
  lamb, onebitadam, zerooneadam, onebitlamb, adagrad, lion, muadam, muadamw, musgd,
  torch_other,                                   // any other torch.optim class name
};

struct OptimizerConfig {
  OptimizerType type = OptimizerType::adamw;
  std::string type_name;          // as written in the config
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool adam_w_mode = true;        // as written (default true)
  bool bias_correction = true;
  // DeepSpeed: "Adam" is AdamW (decoupled weight decay) unless adam_w_mode is false (research §1.3).
  bool decoupled_weight_decay() const { return type == OptimizerType::adamw || adam_w_mode; }
  nlohmann::json params;          // the resolved params object, for optimizers beyond Adam/AdamW
};

enum class SchedulerType : unsigned char {
  warmup_lr, warmup_decay_lr, warmup_cosine_lr, one_cycle, lr_range_test,  // implemented
  torch_other,                                                             // a torch.optim.lr_scheduler class
};
enum class WarmupType : unsigned char { log, linear };

// All five DeepSpeed schedules' parameters with DeepSpeed's defaults (research §1.4); only those of
// `type` were read from the config. Lists hold one value per param group, or one for all groups.
struct SchedulerConfig {
  SchedulerType type = SchedulerType::warmup_lr;
  std::string type_name;          // as DeepSpeed names it
  nlohmann::json params;          // the resolved params object (the only record for torch_other)
  int64_t last_batch_iteration = -1;
  // WarmupLR, WarmupDecayLR, WarmupCosineLR
  int64_t warmup_num_steps = 1000;
  WarmupType warmup_type = WarmupType::log;
  // WarmupLR, WarmupDecayLR
  std::vector<double> warmup_min_lr{0.0};
  std::vector<double> warmup_max_lr{0.001};
  // WarmupDecayLR, WarmupCosineLR (required there)
  int64_t total_num_steps = 0;
  // WarmupCosineLR
  double warmup_min_ratio = 0.0;
  double cos_min_ratio = 1e-4;
  // OneCycle (cycle_min_lr, cycle_max_lr required there)
  double cycle_min_lr = 0;
  double cycle_max_lr = 0;
  double decay_lr_rate = 0;
  int64_t cycle_first_step_size = 2000;
  std::optional<int64_t> cycle_second_step_size;    // none: = cycle_first_step_size
  int64_t cycle_first_stair_count = 0;
  std::optional<int64_t> cycle_second_stair_count;
  int64_t decay_step_size = 0;
  bool cycle_momentum = true;
  double cycle_min_mom = 0.8;
  double cycle_max_mom = 0.9;
  double decay_mom_rate = 0;
  // LRRangeTest
  std::vector<double> lr_range_test_min_lr{1e-3};
  int64_t lr_range_test_step_size = 2000;
  double lr_range_test_step_rate = 1.0;
  bool lr_range_test_staircase = false;
};

enum class OffloadDevice : unsigned char { none, cpu, nvme };

struct OffloadOptimizerConfig {
  OffloadDevice device = OffloadDevice::none;
  std::optional<std::string> nvme_path;
  int64_t buffer_count = 4;
  bool pin_memory = false;
  bool pipeline_read = false;
  bool pipeline_write = false;
  bool fast_init = false;
  double ratio = 1.0;
};

struct OffloadParamConfig {
  OffloadDevice device = OffloadDevice::none;   // none whenever stage < 3 (DeepSpeed ignores it)
  std::optional<std::string> nvme_path;
  int64_t buffer_count = 5;
  int64_t buffer_size = 100'000'000;
  int64_t max_in_cpu = 1'000'000'000;
  bool pin_memory = false;
};

struct ZeroConfig {
  int stage = 0;
  bool contiguous_gradients = true;
  bool overlap_comm = false;            // DeepSpeed's default: true for stage 3, false otherwise
  bool reduce_scatter = true;
  int64_t reduce_bucket_size = 500'000'000;      // elements
  int64_t allgather_bucket_size = 500'000'000;   // elements
  bool use_multi_rank_bucket_allreduce = true;
  bool allgather_partitions = true;
  bool load_from_fp32_weights = true;
  bool round_robin_gradients = false;
  bool ignore_unused_parameters = true;
  OffloadOptimizerConfig offload_optimizer;
  OffloadParamConfig offload_param;
  int64_t sub_group_size = 1'000'000'000;
  int64_t prefetch_bucket_size = 50'000'000;
  int64_t param_persistence_threshold = 100'000;
  int64_t model_persistence_threshold = INT64_MAX;
  int64_t max_live_parameters = 1'000'000'000;
  int64_t max_reuse_distance = 1'000'000'000;
  bool gather_16bit_weights_on_model_save = false;
  int64_t module_granularity_threshold = 0;
  bool use_all_reduce_for_fetch_params = false;
};

enum class TagValidation : unsigned char { ignore, warn, fail };

struct CheckpointConfig {
  TagValidation tag_validation = TagValidation::warn;
  bool load_universal = false;
  bool use_node_local_storage = false;
  bool parallel_write_pipeline_stage = false;
};

// A setting DeepSpeed accepts that dsworker cannot run (offload to NVMe, an optimizer other than
// Adam/AdamW, ...). Loading succeeds (so tools such as the memory estimator can read the file);
// the engine calls refuse_unimplemented() before training.
struct UnimplementedSetting {
  std::string path;
  std::string value;   // JSON text
};

struct DsConfig {
  BatchConfig batch;
  PrecisionConfig precision;
  std::optional<DType> grad_accum_dtype_given;  // data_types.grad_accum_dtype as written
  std::optional<DType> communication_dtype_given;
  bool prescale_gradients = false;
  double gradient_predivide_factor = 1.0;
  std::optional<OptimizerConfig> optimizer;     // none: dsworker builds AdamW from its flags
  std::optional<SchedulerConfig> scheduler;     // none: dsworker's own schedule
  double gradient_clipping = 0;                 // 0 = off (DeepSpeed's code default)
  std::optional<int64_t> steps_per_print;       // none = no progress lines (DeepSpeed's default)
  bool wall_clock_breakdown = false;
  bool memory_breakdown = false;
  bool dump_state = false;
  ZeroConfig zero;
  CheckpointConfig checkpoint;
  std::vector<UnimplementedSetting> unimplemented;

  // The dtype micro-step gradients are summed in, as dsworker runs it: stages 0/1 the given
  // data_types.grad_accum_dtype, else the model dtype (DeepSpeed's default, engine.get_data_types);
  // stages 2/3 always fp32 (the engine reduces every micro-step into an fp32 accumulator). Unlike
  // DeepSpeed 0.19, which refuses fp32 with bf16/fp16 at stage 0 and honours it at stage 1 only
  // through its BF16_Optimizer (bf16, no offload), dsworker honours fp32 at stages 0 and 1 with
  // every 16-bit dtype and offload. A dtype other than fp32 or the model dtype is refused at load.
  DType grad_accum_dtype() const;
  // DeepSpeed's rule for gradient reductions: communication_data_type, else the model dtype.
  DType communication_dtype() const;

  // The config after "auto" resolution and alias renaming, with the inferred batch triple; what
  // rank 0 prints once and what the launcher ships to every worker (it loads unchanged with the
  // same world size and no flags). DeepSpeed's defaults are not filled in: absent keys stay absent.
  const nlohmann::json& resolved_json() const { return m_resolved; }
  void set_resolved_json(nlohmann::json resolved) { m_resolved = std::move(resolved); }  // the loader's

 private:
  nlohmann::json m_resolved;
};

// Reads, validates and resolves a config. `world_size` is the data-parallel size (>= 1).
// `warnings` (may be null) receives one line per accepted-but-not-implemented key, deprecated name
// and ignored block, each starting with `source` ("ds_config.json: ..."). Throws ConfigError.
DsConfig load_ds_config(const nlohmann::json& raw, const AutoValues& from_flags, int world_size,
                        std::vector<std::string>* warnings, std::string_view source = "ds_config");

// Same from text: JSON with comments and trailing commas (what DeepSpeed's hjson reader accepts of
// ds_config files in practice). Duplicate keys are an error, as in DeepSpeed.
DsConfig load_ds_config_text(std::string_view text, const AutoValues& from_flags, int world_size,
                             std::vector<std::string>* warnings, std::string_view source);

// Same from a file; `source` in messages is the path as given. A missing or unreadable file, or a
// syntax error (reported with line and column), throws ConfigError.
DsConfig load_ds_config_file(const std::string& path, const AutoValues& from_flags, int world_size,
                             std::vector<std::string>* warnings);

// Throws ConfigError listing every UnimplementedSetting of `config` (nothing when the list is
// empty). The engine calls this before it allocates anything.
void refuse_unimplemented(const DsConfig& config, std::string_view source = "ds_config");

}  // namespace ds::config
