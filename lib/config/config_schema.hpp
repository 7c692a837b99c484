// The table of every ds_config.json key DeepSpeed knows (STYLE.md habit 8: "config is a table").
//
// Each key is declared once, with its JSON path, type, range, DeepSpeed's *code* default (0.16.5,
// research/zero-anchors.md §1 and §8.5: where the docs disagree, the code wins), whether "auto" may
// stand in for it and where "auto" is resolved from, whether dsworker implements it, the other
// names DeepSpeed accepts for it, and a one-line doc string. The validator (config_validate.cpp),
// the "did you mean" suggestions and docs/config-keys.md are all derived from this table, so they
// cannot drift apart.
//
// Paths: dot-separated member names from the top level, e.g. "zero_optimization.offload_param.
// pin_memory". Members of "optimizer.params" and "scheduler.params" depend on the sibling "type";
// their specs carry a `variant` naming the types they belong to.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ds::config {

enum class KeyType : unsigned char {
  boolean,
  integer,         // int64; integral floats (1e5, 5.0e8) are accepted, fractional ones are errors
  number,          // double; integers are accepted
  string,
  enumeration,     // a string from `allowed`
  object,          // members declared in the table (or any, when `open`)
  number_list,     // array of numbers (`list_length` elements when non-zero)
  number_or_list,  // a number, or an array of numbers (one per optimizer param group)
  string_list,
  any,             // passed through unvalidated (values DeepSpeed hands to third-party code)
};

// What dsworker does with a key. Keys that are not `implemented` produce a warning naming them when
// present with a value other than DeepSpeed's default (a default value changes nothing).
enum class KeyStatus : unsigned char {
  implemented,       // honoured exactly as DeepSpeed does
  accepted_ignored,  // harmless to ignore (monitors, profilers, knobs with no effect on results)
  not_implemented,   // would change what or how DeepSpeed trains; dsworker ignores it and says so
};

// Where "auto" is resolved from (research §1.8: what the Hugging Face Trainer fills in). `none`
// means "auto" is an error at that key.
enum class AutoSource : unsigned char {
  none,
  micro_batch,        // train_micro_batch_size_per_gpu <- AutoValues::micro_batch
  grad_accum,         // gradient_accumulation_steps   <- AutoValues::grad_accum
  train_batch,        // train_batch_size: inferred as micro * accum * world size
  max_grad_norm,      // gradient_clipping             <- AutoValues::max_grad_norm
  learning_rate,      // optimizer lr, warmup_max_lr   <- AutoValues::learning_rate
  betas,              // optimizer betas               <- [adam_beta1, adam_beta2]
  eps,                // optimizer eps                 <- AutoValues::adam_eps
  weight_decay,       // optimizer weight_decay        <- AutoValues::weight_decay
  zero,               // warmup_min_lr                 <- 0 (the Trainer's constant)
  total_steps,        // total_num_steps               <- AutoValues::total_steps
  warmup_steps,       // warmup_num_steps              <- AutoValues::warmup_steps
  precision_fp16,     // fp16.enabled                  <- AutoValues::precision == fp16
  precision_bf16,     // bf16.enabled                  <- AutoValues::precision == bf16
  apex_amp,           // amp.enabled                   <- false (dsworker has no apex)
  amp_opt_level,      // amp.opt_level                 <- "O1" (the Trainer's default)
  hidden_squared,     // reduce_bucket_size            <- hidden_size^2
  hidden_squared_09,  // stage3_prefetch_bucket_size   <- floor(0.9 * hidden_size^2), stage 3 only
  hidden_times_10,    // stage3_param_persistence_threshold <- 10 * hidden_size, stage 3 only
};

struct KeySpec {
  std::string_view path;
  KeyType type = KeyType::any;
  // DeepSpeed's code default as JSON text ("5e8", "true", "\"none\"", "null"). Empty when the key
  // has no default: `required` says whether it must then be given.
  std::string_view default_json;
  bool required = false;
  bool nullable = false;            // JSON null is a valid value
  std::optional<double> min;        // numeric range (numbers, integers, list elements)
  std::optional<double> max;
  bool min_exclusive = false;
  bool max_exclusive = false;
  int list_length = 0;              // number_list: exact element count when > 0
  std::string_view allowed;         // enumeration: canonical values, '|'-separated
  bool case_insensitive = false;    // enumeration: DeepSpeed lower/upper-cases before comparing
  std::string_view value_aliases;   // enumeration: "float32=fp32|half=fp16"
  // Values DeepSpeed accepts but dsworker cannot run (JSON text, '|'-separated): loading succeeds
  // with a warning, DsConfig::unimplemented lists them and the engine refuses to start
  // (refuse_unimplemented()). E.g. offload device "nvme", optimizer type "Lamb".
  std::string_view refused_values;
  bool open = false;                // object: members other than those declared pass unvalidated
  std::string_view selector;        // object: the sibling member whose value picks `variant` specs
  std::string_view variant;         // member of a selector object: types it belongs to ('|'), or "*"
  AutoSource auto_source = AutoSource::none;
  KeyStatus status = KeyStatus::implemented;
  std::string_view aliases;             // other names accepted at the same level, silently ('|')
  std::string_view deprecated_aliases;  // other names accepted with a deprecation warning ('|')
  std::string_view doc;

  std::string_view name() const;    // last path component
  std::string_view parent() const;  // path without the last component ("" at top level)
};

// Every key, in a stable order (sections as DeepSpeed's docs present them).
std::span<const KeySpec> config_keys();

// The spec at `path` (canonical names only). For members of a selector object pass the selector's
// value as `variant` (e.g. "AdamW", "WarmupLR"); nullptr when the table has no such key.
const KeySpec* find_config_key(std::string_view path, std::string_view variant = {});

// The members the table declares directly under `parent` ("" = top level) for `variant`.
std::vector<const KeySpec*> config_children(std::string_view parent, std::string_view variant = {});

// Does `spec.variant` cover `variant`? ("*" covers all; comparison ignores case for optimizer
// types, which DeepSpeed matches case-insensitively, and is exact for scheduler types.)
bool variant_matches(const KeySpec& spec, std::string_view variant);

// Human-readable names for docs and messages.
std::string_view key_type_name(const KeySpec& spec);  // "integer", "enum", "bool", ...
std::string_view key_status_name(KeyStatus status);   // "implemented", "accepted_ignored", ...
std::string_view auto_source_description(AutoSource source);  // "--lr", "hidden_size^2", ...

// docs/config-keys.md, generated from the table (tests compare the committed file with this).
std::string dump_config_table_markdown();

// Splits a '|'-separated list ("a|b|c") into its parts; empty input gives no parts.
std::vector<std::string_view> split_bars(std::string_view list);

}  // namespace ds::config
