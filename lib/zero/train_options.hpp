// What `dsworker train` is asked to do (its flags), and how a DeepSpeed config plus those flags
// become the engine's options, the parameter groups and the learning-rate schedule.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/params.hpp"
#include "config/config.hpp"
#include "zero/engine_options.hpp"
#include "zero/lr_schedule.hpp"

namespace ds::zero {

// dsworker's flags. Optional ones are "what the user set": they resolve "auto" in the config and
// must agree with plain values there (as the Hugging Face Trainer's arguments do); when unset,
// dsworker's defaults (train_defaults()) resolve "auto" and are never compared.
struct TrainOptions {
  std::string model = "tiny";              // --model: a preset or a spec (model/gpt_config.hpp)
  std::string data;                        // --data: .bin shards, a directory, a glob, or text; empty: the built-in corpus
  int64_t steps = 200;                     // --steps: optimizer steps of the whole run
  std::optional<std::string> config_path;  // --deepspeed / --deepspeed_config
  std::optional<double> lr;                // --lr
  std::optional<int64_t> micro_batch;      // --micro_batch (--micro_batch_size)
  std::optional<int64_t> grad_accum;       // --grad_accum_steps
  std::optional<int> seq_len;              // --seq_len; default: the model's seq_len
  std::optional<double> weight_decay, adam_beta1, adam_beta2, adam_eps, max_grad_norm;
  std::optional<int64_t> warmup_steps;
  std::optional<config::Precision> precision;  // --precision fp32|bf16|fp16
  uint64_t seed = 1234;                    // --seed
  std::string save_dir;                    // --save_dir
  int64_t save_interval = 0;               // --save_interval: steps between checkpoints (0: only at the end)
  std::string resume;                      // --resume: a save_dir (its latest) or a tag directory
  std::string metrics_path;                // --metrics: JSONL, one record per step (rank 0)
  std::string device = "auto";             // --device auto|cpu|cuda
  std::vector<std::string> param_groups;   // --param_group "REGEX:lr=X,weight_decay=Y" (repeatable)
  int64_t log_interval = 0;                // --log_interval: steps between progress lines (0: about every 2 s)
  int64_t eval_interval = 0;               // --eval_interval: steps between validation losses (0: at the end only)
  int64_t val_batches = 4;                 // --val_batches
  double val_fraction = 0.01;              // share of the data held out for validation
  std::optional<int> threads;              // --threads per rank (default: OMP_NUM_THREADS / cores per rank)
  std::optional<int> stage;                // --zero_stage: override zero_optimization.stage (tests, quick runs)
  bool skip_preflight = false;             // --skip_memory_check
  bool activation_checkpointing = false;   // --activation_checkpointing
};

// dsworker's defaults: AdamW lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1, micro-batch
// 4, no accumulation, no clipping, no warmup, fp32.
config::AutoValues train_defaults();
// The user's flags as AutoValues (with train_defaults() behind them), hidden size from the model.
config::AutoValues auto_values(const TrainOptions& options, int64_t hidden_size);

// A --param_group flag: params whose name matches `pattern` (ECMAScript regex, searched) get the
// overrides. Later flags win for a param matched by several.
struct ParamGroupOverride {
  std::string text;              // as given, for messages
  std::string pattern;
  std::optional<double> lr, weight_decay, beta1, beta2, eps;
};
ParamGroupOverride parse_param_group(const std::string& text);  // throws UsageError

// Engine options from the resolved config: stage, precision, buckets, offload, clipping, scaler,
// and the optimizer's parameter groups: "decay" and "no_decay" (biases and LayerNorm, weight decay
// 0), then one group per --param_group that matches something. Throws ConfigError for settings
// the engine cannot run (refuse_unimplemented, NVMe offload) and UsageError for a --param_group
// that matches no parameter.
EngineOptions engine_options(const config::DsConfig& config, const model::ModelLayout& layout,
                             const std::vector<ParamGroupOverride>& overrides);

// What dsworker adds to a raw config before reading it: an AdamW block resolved from its flags when
// the config has no optimizer (as the Hugging Face Trainer builds its own optimizer); with no
// config file (`from_file` false) also the precision, clipping and, with --warmup_steps, a linear
// WarmupLR, all "auto" (so the flags and dsworker's defaults decide, and the resolved config that
// rank 0 prints shows what ran).
void add_flag_driven_keys(nlohmann::json& raw, const TrainOptions& options, bool from_file);

// The LR schedule of the config ("scheduler" block), or constant lrs without one.
LrScheduleOptions schedule_options(const config::DsConfig& config);

}  // namespace ds::zero
