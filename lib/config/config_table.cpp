// The ds_config.json key table: every key of DeepSpeed 0.16.5 that dsworker knows, declared once.
// Sources for names and defaults (read for semantics, not copied): deepspeed/runtime/constants.py,
// runtime/config.py, runtime/zero/config.py, runtime/zero/offload_config.py, lr_schedules.py,
// monitor/config.py, and research/zero-anchors.md §1. Doc strings are ours.
//
// Reading a row: K::integer("zero_optimization.stage", "0", "doc").range(0, 3) declares an integer
// with DeepSpeed's default 0 allowed from 0 to 3. Modifiers: .range/.at_least/.above set bounds,
// .autos(source) allows "auto", .ignored()/.unimplemented() set the status, .alias/.deprecated add
// other names, .refuse(values) marks values dsworker cannot run, .variant(types) ties a member of
// optimizer.params / scheduler.params to optimizer or scheduler types.
#include <span>

#include "config/config_schema.hpp"

namespace ds::config {
namespace {

struct K {
  KeySpec s;

  static K make(std::string_view path, KeyType type, std::string_view def, std::string_view doc) {
    K k;
    k.s.path = path;
    k.s.type = type;
    k.s.default_json = def;
    k.s.doc = doc;
    if (def == "null") k.s.nullable = true;
    return k;
  }
  static K boolean(std::string_view p, std::string_view def, std::string_view doc) { return make(p, KeyType::boolean, def, doc); }
  static K integer(std::string_view p, std::string_view def, std::string_view doc) { return make(p, KeyType::integer, def, doc); }
  static K number(std::string_view p, std::string_view def, std::string_view doc) { return make(p, KeyType::number, def, doc); }
  static K string(std::string_view p, std::string_view def, std::string_view doc) { return make(p, KeyType::string, def, doc); }
  static K object(std::string_view p, std::string_view doc) { return make(p, KeyType::object, "", doc); }
  static K numbers(std::string_view p, std::string_view def, std::string_view doc) { return make(p, KeyType::number_list, def, doc); }
  static K number_or_list(std::string_view p, std::string_view def, std::string_view doc) { return make(p, KeyType::number_or_list, def, doc); }
  static K strings(std::string_view p, std::string_view def, std::string_view doc) { return make(p, KeyType::string_list, def, doc); }
  static K any(std::string_view p, std::string_view def, std::string_view doc) { return make(p, KeyType::any, def, doc); }
  static K enumeration(std::string_view p, std::string_view def, std::string_view allowed, std::string_view doc) {
    K k = make(p, KeyType::enumeration, def, doc);
    k.s.allowed = allowed;
    return k;
  }

  K range(double lo, double hi) const { K k = *this; k.s.min = lo; k.s.max = hi; return k; }
  K at_least(double lo) const { K k = *this; k.s.min = lo; return k; }
  K above(double lo) const { K k = *this; k.s.min = lo; k.s.min_exclusive = true; return k; }
  K below(double hi) const { K k = *this; k.s.max = hi; k.s.max_exclusive = true; return k; }
  K length(int n) const { K k = *this; k.s.list_length = n; return k; }
  K required() const { K k = *this; k.s.required = true; return k; }
  K nullable() const { K k = *this; k.s.nullable = true; return k; }
  K any_case() const { K k = *this; k.s.case_insensitive = true; return k; }
  K value_aliases(std::string_view a) const { K k = *this; k.s.value_aliases = a; return k; }
  K refuse(std::string_view v) const { K k = *this; k.s.refused_values = v; return k; }
  K open() const { K k = *this; k.s.open = true; return k; }
  K selector(std::string_view sel) const { K k = *this; k.s.selector = sel; return k; }
  K variant(std::string_view v) const { K k = *this; k.s.variant = v; return k; }
  K autos(AutoSource a) const { K k = *this; k.s.auto_source = a; return k; }
  K ignored() const { K k = *this; k.s.status = KeyStatus::accepted_ignored; return k; }
  K unimplemented() const { K k = *this; k.s.status = KeyStatus::not_implemented; return k; }
  K alias(std::string_view a) const { K k = *this; k.s.aliases = a; return k; }
  K deprecated(std::string_view a) const { K k = *this; k.s.deprecated_aliases = a; return k; }
  operator KeySpec() const { return s; }
};

using A = AutoSource;

constexpr std::string_view k_adam = "Adam|AdamW";
constexpr std::string_view k_warmup = "WarmupLR|WarmupDecayLR";
constexpr std::string_view k_warmup_all = "WarmupLR|WarmupDecayLR|WarmupCosineLR";
constexpr std::string_view k_total = "WarmupDecayLR|WarmupCosineLR";
constexpr std::string_view k_schedules = "WarmupLR|WarmupDecayLR|WarmupCosineLR|OneCycle|LRRangeTest";
constexpr std::string_view k_scheduler_types =
    "WarmupLR|WarmupDecayLR|WarmupCosineLR|OneCycle|LRRangeTest|StepLR|MultiStepLR|ConstantLR|LinearLR|ExponentialLR|"
    "PolynomialLR|CosineAnnealingLR|CosineAnnealingWarmRestarts|CyclicLR|OneCycleLR|ReduceLROnPlateau";
constexpr std::string_view k_torch_schedulers =
    "\"StepLR\"|\"MultiStepLR\"|\"ConstantLR\"|\"LinearLR\"|\"ExponentialLR\"|\"PolynomialLR\"|\"CosineAnnealingLR\"|"
    "\"CosineAnnealingWarmRestarts\"|\"CyclicLR\"|\"OneCycleLR\"|\"ReduceLROnPlateau\"";

const KeySpec k_table[] = {
    // ---- batch (research §1.1) -----------------------------------------------------------------
    K::integer("train_batch_size", "null", "Samples per optimizer step over all data-parallel ranks; must equal micro batch * accumulation steps * world size. Inferred when absent.")
        .at_least(1).autos(A::train_batch),
    K::integer("train_micro_batch_size_per_gpu", "null", "Samples per rank per forward/backward. Inferred when absent.")
        .at_least(1).autos(A::micro_batch),
    K::integer("gradient_accumulation_steps", "null", "Micro-steps per optimizer step. Inferred when absent.")
        .at_least(1).autos(A::grad_accum),

    // ---- top-level scalars (research §1.5) ---------------------------------------------------------
    K::number("gradient_clipping", "0.0", "Clip the global gradient L2 norm to this value; 0 disables clipping (DeepSpeed's docs say 1.0, its code says 0).")
        .at_least(0).autos(A::max_grad_norm),
    K::integer("steps_per_print", "null", "Print step, skipped steps, lr and momentum on rank 0 every this many optimizer steps; none prints nothing.")
        .at_least(1),
    K::boolean("wall_clock_breakdown", "false", "Time forward, backward and optimizer step and print the breakdown."),
    K::boolean("memory_breakdown", "false", "Print memory use at points of the step.").unimplemented(),
    K::boolean("dump_state", "false", "Print the engine's state after initialization.").ignored(),
    K::boolean("prescale_gradients", "false", "Divide gradients by the world size before the reduction instead of after.").unimplemented(),
    K::number("gradient_predivide_factor", "1.0", "Divide gradients by this factor before the reduction and by world size / factor after.")
        .above(0).unimplemented(),
    K::enumeration("communication_data_type", "null", "fp16|bf16|fp32", "Data type of gradient reductions; none means the training precision (fp16, bf16 or fp32).")
        .any_case(),
    K::enumeration("seq_parallel_comm_data_type", "\"fp32\"", "fp16|bf16|fp32", "Reduction dtype for sequence parallelism, which dsworker does not have.")
        .any_case().ignored(),
    K::boolean("disable_allgather", "false", "Broadcast instead of all-gather of updated parameters (legacy).").unimplemented(),
    K::boolean("sparse_gradients", "false", "Sparse (CSR) gradients for embeddings; dense gradients give the same result.").unimplemented(),
    K::boolean("graph_harvesting", "false", "Capture short kernel sequences in CUDA graphs.").ignored(),
    K::boolean("dataloader_drop_last", "false", "Drop the last incomplete batch of DeepSpeed's data loader.").unimplemented(),
    K::integer("vocabulary_size", "null", "Only used by DeepSpeed for a tensor-core alignment warning.").at_least(1).ignored(),
    K::boolean("zero_allow_untested_optimizer", "false", "Allow a client optimizer DeepSpeed has not tested with ZeRO; dsworker has no client optimizers.").ignored(),
    K::boolean("zero_force_ds_cpu_optimizer", "true", "Require DeepSpeed's CPU Adam with optimizer offload; dsworker always uses its own CPU Adam.").ignored(),
    K::boolean("use_data_before_expert_parallelism", "false", "Process-group order for mixture-of-experts models.").ignored(),
    K::integer("allgather_size", "5e8", "Legacy: allgather_bucket_size when zero_optimization is written as a boolean; ignored otherwise.").at_least(0).ignored(),

    // ---- fp16 (research §1.2) ----------------------------------------------------------------------
    K::object("fp16", "Mixed precision with fp16 weights and activations, fp32 master weights and loss scaling."),
    K::boolean("fp16.enabled", "false", "Train in fp16.").autos(A::precision_fp16),
    K::boolean("fp16.auto_cast", "false", "Cast floating-point model inputs to fp16; dsworker's inputs are token ids.").ignored(),
    K::number("fp16.loss_scale", "0", "0 selects dynamic loss scaling; a positive value is a static scale.").at_least(0),
    K::integer("fp16.initial_scale_power", "16", "Dynamic scaling starts at 2^power (2^32 when no scaler key is written; see DsConfig).").range(0, 64),
    K::integer("fp16.loss_scale_window", "1000", "Overflow-free steps before the scale doubles.").at_least(1),
    K::integer("fp16.hysteresis", "2", "Overflows tolerated before the scale is halved.").at_least(1),
    K::boolean("fp16.consecutive_hysteresis", "false", "Refill the hysteresis on every overflow-free step."),
    K::number("fp16.min_loss_scale", "1", "Lower bound of the dynamic scale.").above(0),
    K::boolean("fp16.fp16_master_weights_and_grads", "false", "Keep master weights and gradients in fp16 (DeepSpeed: stage 2 with CPU offload only).")
        .refuse("true").unimplemented(),

    // ---- bf16 ----------------------------------------------------------------------------------------
    K::object("bf16", "Mixed precision with bf16 weights and activations and fp32 master weights; no loss scaling.").alias("bfloat16"),
    K::boolean("bf16.enabled", "false", "Train in bf16.").autos(A::precision_bf16),
    K::boolean("bf16.immediate_grad_update", "false", "BF16 optimizer: accumulate into fp32 gradients during backward.").unimplemented(),

    // ---- amp -----------------------------------------------------------------------------------------
    K::object("amp", "NVIDIA apex AMP; every member other than enabled goes to amp.initialize. Cannot be combined with ZeRO.").open().unimplemented(),
    K::boolean("amp.enabled", "false", "Use apex AMP.").autos(A::apex_amp).refuse("true").unimplemented(),
    K::string("amp.opt_level", "", "apex optimization level (O0 to O3).").autos(A::amp_opt_level).ignored(),

    // ---- data types ----------------------------------------------------------------------------------
    K::object("data_types", "Data types of internal buffers."),
    K::enumeration("data_types.grad_accum_dtype", "null", "fp32|fp16|bf16", "Dtype micro-step gradients are summed in: fp32 or the model dtype (none: the model dtype, as DeepSpeed). Stages 0/1 honour fp32 with bf16/fp16 through an extra fp32 gradient buffer (DeepSpeed refuses that at stage 0); stages 2/3 always sum in fp32.")
        .value_aliases("float32=fp32|float=fp32|torch.float32=fp32|float16=fp16|half=fp16|torch.float16=fp16|bfloat16=bf16|torch.bfloat16=bf16"),

    // ---- optimizer (research §1.3) -------------------------------------------------------------------
    K::object("optimizer", "The optimizer DeepSpeed builds; when absent dsworker builds AdamW from its flags."),
    K::enumeration("optimizer.type", "", "Adam|AdamW|Lamb|OneBitAdam|ZeroOneAdam|OneBitLamb|Adagrad|Lion|MuAdam|MuAdamW|MuSGD|SGD|RMSprop|Adadelta|Adamax|ASGD|NAdam|RAdam|Rprop|LBFGS|SparseAdam|Adafactor",
                   "Optimizer name, matched without regard to case; names beyond DeepSpeed's are torch.optim classes.")
        .required().any_case()
        .refuse("\"Lamb\"|\"OneBitAdam\"|\"ZeroOneAdam\"|\"OneBitLamb\"|\"Adagrad\"|\"Lion\"|\"MuAdam\"|\"MuAdamW\"|\"MuSGD\"|\"SGD\"|\"RMSprop\"|\"Adadelta\"|\"Adamax\"|\"ASGD\"|\"NAdam\"|\"RAdam\"|\"Rprop\"|\"LBFGS\"|\"SparseAdam\"|\"Adafactor\""),
    K::object("optimizer.params", "Constructor arguments of the optimizer; members depend on optimizer.type.").selector("type"),
    K::boolean("optimizer.legacy_fusion", "false", "Legacy fused fp16 optimizer switch.").ignored(),
    K::number("optimizer.params.lr", "1e-3", "Learning rate (the peak when a scheduler sets it).").at_least(0).variant("*").autos(A::learning_rate),
    K::numbers("optimizer.params.betas", "[0.9, 0.999]", "Adam's beta1 and beta2.").length(2).at_least(0).below(1).variant("*").autos(A::betas),
    K::number("optimizer.params.eps", "1e-8", "Added to the denominator for numerical stability.").at_least(0).variant("*").autos(A::eps),
    K::number("optimizer.params.weight_decay", "0", "Weight decay coefficient.").at_least(0).variant("*").autos(A::weight_decay),
    K::boolean("optimizer.params.adam_w_mode", "true", "Decoupled weight decay (AdamW). \"Adam\" is AdamW unless this is false.").variant(k_adam),
    K::boolean("optimizer.params.bias_correction", "true", "Divide the moments by 1 - beta^t.").variant(k_adam),
    K::boolean("optimizer.params.torch_adam", "false", "Use torch.optim.Adam(W) instead of DeepSpeed's fused kernels; same update.").variant(k_adam).ignored(),
    K::boolean("optimizer.params.amsgrad", "false", "AMSGrad variant; DeepSpeed's fused and CPU Adam reject it.").variant(k_adam).refuse("true").unimplemented(),
    K::boolean("optimizer.params.fp32_optimizer_states", "true", "CPU Adam: keep moments in fp32.").variant(k_adam).refuse("false").unimplemented(),
    K::boolean("optimizer.params.set_grad_none", "true", "Fused Adam: set gradients to None on zero_grad.").variant(k_adam).ignored(),

    // ---- scheduler (research §1.4) -------------------------------------------------------------------
    K::object("scheduler", "Learning-rate schedule, stepped once per applied optimizer step (not on fp16 overflow)."),
    K::enumeration("scheduler.type", "", k_scheduler_types, "Schedule name (case-sensitive, as DeepSpeed looks it up); names beyond DeepSpeed's five are torch.optim.lr_scheduler classes.")
        .required().refuse(k_torch_schedulers),
    K::object("scheduler.params", "Constructor arguments of the schedule; members depend on scheduler.type.").selector("type"),
    K::number_or_list("scheduler.params.warmup_min_lr", "0.0", "Learning rate at the start of warmup; a list gives one per param group.")
        .at_least(0).variant(k_warmup).autos(A::zero),
    K::number_or_list("scheduler.params.warmup_max_lr", "0.001", "Learning rate at the end of warmup; a number is copied to every param group.")
        .at_least(0).variant(k_warmup).autos(A::learning_rate),
    K::integer("scheduler.params.warmup_num_steps", "1000", "Warmup length in optimizer steps (at least 2 is used).").at_least(0).variant(k_warmup_all).autos(A::warmup_steps),
    K::enumeration("scheduler.params.warmup_type", "\"log\"", "log|linear", "Warmup curve: logarithmic or linear.").variant(k_warmup_all),
    K::integer("scheduler.params.total_num_steps", "", "Total optimizer steps; the decay reaches 0 (or cos_min_ratio) there.")
        .required().at_least(1).variant(k_total).autos(A::total_steps),
    K::number("scheduler.params.warmup_min_ratio", "0.0", "Start of warmup as a fraction of each group's learning rate.").range(0, 1).variant("WarmupCosineLR"),
    K::number("scheduler.params.cos_min_ratio", "0.0001", "End of the cosine decay as a fraction of each group's learning rate.").range(0, 1).variant("WarmupCosineLR"),
    K::number("scheduler.params.cycle_min_lr", "", "Lowest learning rate of the cycle.").required().at_least(0).variant("OneCycle"),
    K::number("scheduler.params.cycle_max_lr", "", "Highest learning rate of the cycle.").required().at_least(0).variant("OneCycle"),
    K::number("scheduler.params.decay_lr_rate", "0.0", "Learning-rate decay rate after the cycle.").at_least(0).variant("OneCycle"),
    K::integer("scheduler.params.cycle_first_step_size", "2000", "Steps of the rising half of the cycle.").at_least(1).variant("OneCycle"),
    K::integer("scheduler.params.cycle_second_step_size", "null", "Steps of the falling half; none means cycle_first_step_size.").at_least(1).variant("OneCycle"),
    K::integer("scheduler.params.cycle_first_stair_count", "0", "Stored by DeepSpeed but unused by its formulas.").at_least(0).variant("OneCycle"),
    K::integer("scheduler.params.cycle_second_stair_count", "null", "Stored by DeepSpeed but unused by its formulas.").at_least(0).variant("OneCycle"),
    K::integer("scheduler.params.decay_step_size", "0", "Steps per decay interval after the cycle; 0 disables the decay.").at_least(0).variant("OneCycle"),
    K::boolean("scheduler.params.cycle_momentum", "true", "Cycle beta1 inversely to the learning rate (beta2 is then fixed at 0.99).").variant("OneCycle"),
    K::number("scheduler.params.cycle_min_mom", "0.8", "Lowest beta1 of the cycle.").range(0, 1).variant("OneCycle"),
    K::number("scheduler.params.cycle_max_mom", "0.9", "Highest beta1 of the cycle.").range(0, 1).variant("OneCycle"),
    K::number("scheduler.params.decay_mom_rate", "0.0", "Momentum decay rate after the cycle.").at_least(0).variant("OneCycle"),
    K::number_or_list("scheduler.params.lr_range_test_min_lr", "0.001", "Starting learning rate of the range test.").at_least(0).variant("LRRangeTest"),
    K::integer("scheduler.params.lr_range_test_step_size", "2000", "Steps per increase interval.").at_least(1).variant("LRRangeTest"),
    K::number("scheduler.params.lr_range_test_step_rate", "1.0", "Increase per interval.").at_least(0).variant("LRRangeTest"),
    K::boolean("scheduler.params.lr_range_test_staircase", "false", "Increase in steps instead of continuously.").variant("LRRangeTest"),
    K::integer("scheduler.params.last_batch_iteration", "-1", "Index of the last step taken (-1: a fresh start); dsworker starts schedules at -1 and resumes them from its checkpoints.").at_least(-1).variant(k_schedules).unimplemented(),

    // ---- zero_optimization (research §1.6) -----------------------------------------------------------
    K::object("zero_optimization", "ZeRO: partition optimizer states (stage 1), gradients (2) and parameters (3). `true`/`false` is the legacy form of stage 1/0."),
    K::integer("zero_optimization.stage", "0", "0 off, 1 optimizer states, 2 + gradients, 3 + parameters.").range(0, 3),
    K::boolean("zero_optimization.contiguous_gradients", "true", "Copy gradients into contiguous buffers; dsworker always does.").ignored(),
    K::boolean("zero_optimization.reduce_scatter", "true", "Stages 1-2: reduce to owners instead of all-reducing; same result.").ignored(),
    K::integer("zero_optimization.reduce_bucket_size", "5e8", "Elements per gradient reduction bucket.").at_least(0).autos(A::hidden_squared),
    K::boolean("zero_optimization.use_multi_rank_bucket_allreduce", "true", "Stages 1-2: one all-reduce per bucket instead of a reduce per owner.").ignored(),
    K::boolean("zero_optimization.allgather_partitions", "true", "All-gather versus broadcasts after the step; read by nothing in DeepSpeed.").ignored(),
    K::integer("zero_optimization.allgather_bucket_size", "5e8", "Stages 1-2: elements per all-gather of the updated parameters after the step (must be even); small units share a collective, large ones are split.").at_least(0),
    K::boolean("zero_optimization.overlap_comm", "null", "Overlap gradient reduction with backward; none means true for stage 3, false otherwise."),
    K::boolean("zero_optimization.load_from_fp32_weights", "true", "Restore fp32 master weights from the checkpoint rather than from 16-bit weights.").unimplemented(),
    K::boolean("zero_optimization.elastic_checkpoint", "false", "No longer supported by DeepSpeed; dsworker's checkpoints re-partition on any world size.").ignored(),
    K::object("zero_optimization.offload_optimizer", "Keep optimizer states in host memory and run the optimizer step on the CPU (stages 1-3).").nullable(),
    K::object("zero_optimization.offload_param", "Keep parameters in host memory (stage 3 only; ignored for other stages).").nullable(),
    K::integer("zero_optimization.sub_group_size", "1e9", "Stage 3: the optimizer steps in tiles of this many elements; with optimizer offload each tile's updated params are copied back as soon as it is done.").at_least(0),
    K::boolean("zero_optimization.cpu_offload", "null", "Deprecated: true is offload_optimizer with device cpu."),
    K::boolean("zero_optimization.cpu_offload_param", "null", "Deprecated: true is offload_param with device cpu."),
    K::boolean("zero_optimization.cpu_offload_use_pin_memory", "null", "Deprecated: true pins the offload buffers created by cpu_offload and cpu_offload_param."),
    K::integer("zero_optimization.stage3_prefetch_bucket_size", "5e7", "Stage 3: parameter elements fetched ahead of use (docs say 5e8, code 5e7).")
        .at_least(0).alias("prefetch_bucket_size").autos(A::hidden_squared_09),
    K::integer("zero_optimization.stage3_param_persistence_threshold", "1e5", "Stage 3: parameters with at most this many elements stay gathered.")
        .at_least(0).alias("param_persistence_threshold").autos(A::hidden_times_10),
    K::integer("zero_optimization.stage3_model_persistence_threshold", "9223372036854775807", "Stage 3: cap on the total elements kept gathered by the persistence threshold.")
        .at_least(0).alias("model_persistence_threshold"),
    K::integer("zero_optimization.stage3_max_live_parameters", "1e9", "Stage 3: gathered parameter elements allowed at once.").at_least(0).alias("max_live_parameters"),
    K::integer("zero_optimization.stage3_max_reuse_distance", "1e9", "Stage 3: keep a parameter gathered if it is used again within this many elements.")
        .at_least(0).alias("max_reuse_distance"),
    K::boolean("zero_optimization.stage3_gather_16bit_weights_on_model_save", "false", "Stage 3: gather full 16-bit weights for save_16bit_model; dsworker's export always gathers.")
        .alias("gather_16bit_weights_on_model_save").deprecated("stage3_gather_fp16_weights_on_model_save").ignored(),
    K::integer("zero_optimization.stage3_module_granularity_threshold", "0", "Stage 3: fetch small modules as one unit.").alias("module_granularity_threshold").unimplemented(),
    K::boolean("zero_optimization.stage3_use_all_reduce_for_fetch_params", "false", "Stage 3: all-reduce instead of all-gather to fetch parameters.")
        .alias("use_all_reduce_for_fetch_params").unimplemented(),
    K::boolean("zero_optimization.ignore_unused_parameters", "true", "Stage 2: tolerate parameters that get no gradient.").ignored(),
    K::boolean("zero_optimization.legacy_stage1", "false", "Removed in DeepSpeed 0.5.9; true is an error there and here."),
    K::boolean("zero_optimization.round_robin_gradients", "false", "Stages 1-2: interleave parameters across owners to spread CPU-offload copies.").unimplemented(),
    K::integer("zero_optimization.zero_hpz_partition_size", "1", "ZeRO++ hpZ: secondary parameter partition size.").at_least(0).unimplemented(),
    K::boolean("zero_optimization.zero_quantized_weights", "false", "ZeRO++ qwZ: int8 weight all-gather.").unimplemented(),
    K::boolean("zero_optimization.zero_quantized_nontrainable_weights", "false", "ZeRO++: store frozen weights quantized.").unimplemented(),
    K::boolean("zero_optimization.zero_quantized_gradients", "false", "ZeRO++ qgZ: quantized gradient reduction.").unimplemented(),
    K::object("zero_optimization.zeropp_loco_param", "ZeRO++ LoCo error feedback (err_beta, reset_T).").nullable().open().unimplemented(),
    K::integer("zero_optimization.mics_shard_size", "-1", "MiCS: shard group size (> 0 enables MiCS).").unimplemented(),
    K::boolean("zero_optimization.mics_hierarchical_params_gather", "false", "MiCS: hierarchical all-gather.").unimplemented(),
    K::boolean("zero_optimization.memory_efficient_linear", "true", "Stage 3: DeepSpeed's memory-saving linear layer for PyTorch modules.").ignored(),
    K::boolean("zero_optimization.pipeline_loading_checkpoint", "false", "Stage 3: load checkpoints in pipeline mode.").ignored(),
    K::boolean("zero_optimization.override_module_apply", "true", "Stage 3: patch nn.Module.apply.").ignored(),
    K::boolean("zero_optimization.log_trace_cache_warnings", "false", "Stage 3: log trace-cache invalidations.").ignored(),

    // ---- offload blocks (research §1.7) --------------------------------------------------------------
    K::enumeration("zero_optimization.offload_optimizer.device", "\"none\"", "none|cpu|nvme", "Where optimizer states live; cpu and nvme both step on the CPU.")
        .refuse("\"nvme\""),
    K::string("zero_optimization.offload_optimizer.nvme_path", "null", "NVMe swap directory.").unimplemented(),
    K::integer("zero_optimization.offload_optimizer.buffer_count", "4", "NVMe swap buffers.").at_least(0).unimplemented(),
    K::boolean("zero_optimization.offload_optimizer.pin_memory", "false", "Page-locked host buffers (faster copies)."),
    K::boolean("zero_optimization.offload_optimizer.pipeline_read", "false", "NVMe: overlap reading the next tile with the step.").unimplemented(),
    K::boolean("zero_optimization.offload_optimizer.pipeline_write", "false", "NVMe: overlap writing the previous tile with the step.").unimplemented(),
    K::boolean("zero_optimization.offload_optimizer.fast_init", "false", "NVMe: fast optimizer initialization.").unimplemented(),
    K::number("zero_optimization.offload_optimizer.ratio", "1.0", "Fraction of the optimizer step run on the CPU (stage 3; < 1 needs stage 3).").range(0, 1).unimplemented(),
    K::enumeration("zero_optimization.offload_param.device", "\"none\"", "none|cpu|nvme", "Where parameters live between uses (stage 3).").refuse("\"nvme\""),
    K::string("zero_optimization.offload_param.nvme_path", "null", "NVMe swap directory.").unimplemented(),
    K::integer("zero_optimization.offload_param.buffer_count", "5", "NVMe swap buffers.").at_least(0).unimplemented(),
    K::integer("zero_optimization.offload_param.buffer_size", "1e8", "Elements per NVMe swap buffer.").at_least(0).unimplemented(),
    K::integer("zero_optimization.offload_param.max_in_cpu", "1e9", "NVMe: parameter elements kept in host memory.").at_least(0).unimplemented(),
    K::boolean("zero_optimization.offload_param.pin_memory", "false", "Page-locked host buffers (faster copies)."),

    // ---- checkpoint ------------------------------------------------------------------------------------
    K::object("checkpoint", "Checkpoint behaviour."),
    K::enumeration("checkpoint.tag_validation", "\"Warn\"", "Ignore|Warn|Fail", "At every save the ranks compare their tag: Ignore skips the check, Warn logs a mismatch, Fail stops the save naming each rank's tag.").any_case(),
    K::boolean("checkpoint.load_universal", "false", "Load a DeepSpeed universal checkpoint; dsworker loads its own format, which re-partitions on any world size.").unimplemented(),
    K::boolean("checkpoint.use_node_local_storage", "false", "Each node saves to its own local storage.").unimplemented(),
    K::object("checkpoint.parallel_write", "Parallel checkpoint writing."),
    K::boolean("checkpoint.parallel_write.pipeline_stage", "false", "Pipeline parallelism: write per stage.").ignored(),

    // ---- aio (NVMe offload only) -------------------------------------------------------------------------
    K::object("aio", "Asynchronous I/O for NVMe offload.").ignored(),
    K::integer("aio.block_size", "1048576", "I/O block size in bytes.").at_least(1).ignored(),
    K::integer("aio.queue_depth", "8", "I/O queue depth.").at_least(1).ignored(),
    K::integer("aio.intra_op_parallelism", "1", "I/O threads per request.").at_least(1).ignored(),
    K::boolean("aio.single_submit", "false", "Submit requests one at a time.").ignored(),
    K::boolean("aio.overlap_events", "true", "Overlap submission and completion.").ignored(),
    K::boolean("aio.use_gds", "false", "GPUDirect Storage.").ignored(),
    K::integer("aio.thread_count", "", "In DeepSpeed's docs but read by none of its code (intra_op_parallelism replaced it).").at_least(1).ignored(),

    // ---- activation checkpointing ------------------------------------------------------------------------
    K::object("activation_checkpointing", "DeepSpeed's activation checkpointing API (acts only where model code calls it).").unimplemented(),
    K::boolean("activation_checkpointing.partition_activations", "false", "Partition checkpointed activations across model-parallel ranks.").unimplemented(),
    K::boolean("activation_checkpointing.contiguous_memory_optimization", "false", "Copy checkpoints into one buffer.").unimplemented(),
    K::boolean("activation_checkpointing.cpu_checkpointing", "false", "Keep checkpoints in host memory.").unimplemented(),
    K::integer("activation_checkpointing.number_checkpoints", "null", "Checkpoints per pass, for the contiguous buffer.").at_least(0).unimplemented(),
    K::boolean("activation_checkpointing.synchronize_checkpoint_boundary", "false", "Synchronize at each checkpoint.").unimplemented(),
    K::boolean("activation_checkpointing.profile", "false", "Time the checkpoint functions.").unimplemented(),

    // ---- profilers and loggers ---------------------------------------------------------------------------
    K::object("flops_profiler", "DeepSpeed's FLOPs profiler (dsworker has none).").ignored(),
    K::boolean("flops_profiler.enabled", "false", "Profile one step.").ignored(),
    K::number("flops_profiler.recompute_fwd_factor", "0.0", "Extra forward FLOPs from activation recomputation.").at_least(0).ignored(),
    K::integer("flops_profiler.profile_step", "1", "Step to profile.").ignored(),
    K::integer("flops_profiler.module_depth", "-1", "Module depth to report (-1: all).").ignored(),
    K::integer("flops_profiler.top_modules", "1", "Modules listed per depth.").ignored(),
    K::boolean("flops_profiler.detailed", "true", "Per-module detail.").ignored(),
    K::string("flops_profiler.output_file", "null", "Where the profile goes (none: stdout).").ignored(),
    K::object("comms_logger", "DeepSpeed's communication logger (dsworker has none).").ignored(),
    K::boolean("comms_logger.enabled", "false", "Log collectives.").ignored(),
    K::boolean("comms_logger.verbose", "false", "Log every call.").ignored(),
    K::boolean("comms_logger.prof_all", "true", "Profile all collectives.").ignored(),
    K::boolean("comms_logger.debug", "false", "Name the caller of each collective.").ignored(),
    K::strings("comms_logger.prof_ops", "[]", "Collectives to profile when prof_all is false.").ignored(),

    // ---- monitors --------------------------------------------------------------------------------------------
    K::object("tensorboard", "TensorBoard monitor (dsworker writes no TensorBoard logs).").ignored(),
    K::boolean("tensorboard.enabled", "false", "Write TensorBoard events.").ignored(),
    K::string("tensorboard.output_path", "\"\"", "Log directory.").ignored(),
    K::string("tensorboard.job_name", "\"DeepSpeedJobName\"", "Subdirectory for this job.").ignored(),
    K::object("wandb", "Weights & Biases monitor (dsworker does not log to W&B).").ignored(),
    K::boolean("wandb.enabled", "false", "Log to W&B.").ignored(),
    K::string("wandb.group", "null", "W&B group.").ignored(),
    K::string("wandb.team", "null", "W&B team.").ignored(),
    K::string("wandb.project", "\"deepspeed\"", "W&B project.").ignored(),
    K::object("csv_monitor", "CSV monitor (dsworker writes no CSV logs).").ignored(),
    K::boolean("csv_monitor.enabled", "false", "Write CSV files.").ignored(),
    K::string("csv_monitor.output_path", "\"\"", "Output directory.").ignored(),
    K::string("csv_monitor.job_name", "\"DeepSpeedJobName\"", "Subdirectory for this job.").ignored(),
    K::object("comet", "Comet monitor (dsworker does not log to Comet).").ignored(),
    K::boolean("comet.enabled", "false", "Log to Comet.").ignored(),
    K::integer("comet.samples_log_interval", "100", "Samples between submissions.").at_least(1).ignored(),
    K::string("comet.project", "null", "Comet project.").ignored(),
    K::string("comet.workspace", "null", "Comet workspace.").ignored(),
    K::string("comet.api_key", "null", "Comet API key.").ignored(),
    K::string("comet.experiment_name", "null", "Experiment name.").ignored(),
    K::string("comet.experiment_key", "null", "Experiment key.").ignored(),
    K::boolean("comet.online", "null", "Log online (true) or offline.").ignored(),
    K::string("comet.mode", "null", "get, create or get_or_create.").ignored(),
    K::object("timers", "DeepSpeed's throughput timers.").ignored(),
    K::object("timers.throughput", "Throughput timer.").ignored(),
    K::boolean("timers.throughput.enabled", "true", "Measure throughput.").ignored(),
    K::boolean("timers.throughput.synchronized", "true", "Synchronize the device for each measurement.").ignored(),

    // ---- pipeline parallelism (DeepSpeed's PipelineModule only) ------------------------------------------------
    K::object("pipeline", "Pipeline-parallel engine settings (dsworker has no pipeline parallelism).").open().ignored(),
    K::any("pipeline.stages", "\"auto\"", "Number of stages (DeepSpeed's own \"auto\" is its default).").ignored(),
    K::string("pipeline.partition", "\"best\"", "Layer partitioning method.").ignored(),
    K::boolean("pipeline.seed_layers", "false", "Seed each layer differently.").ignored(),
    K::integer("pipeline.activation_checkpoint_interval", "0", "Layers between activation checkpoints.").at_least(0).ignored(),
    K::boolean("pipeline.pipe_partitioned", "true", "Partition activations between stages.").ignored(),
    K::boolean("pipeline.grad_partitioned", "true", "Partition gradients between stages.").ignored(),

    // ---- features that need DeepSpeed's model or data hooks ------------------------------------------------------
    K::object("elasticity", "Elastic training: DeepSpeed computes the batch triple from GPU counts.").unimplemented(),
    K::boolean("elasticity.enabled", "false", "Compute batch sizes elastically.").refuse("true").unimplemented(),
    K::integer("elasticity.max_train_batch_size", "2000", "Largest acceptable global batch.").at_least(1).unimplemented(),
    K::numbers("elasticity.micro_batch_sizes", "[2, 4, 6]", "Acceptable micro batches.").at_least(1).unimplemented(),
    K::integer("elasticity.min_gpus", "1", "Fewest GPUs.").at_least(1).unimplemented(),
    K::integer("elasticity.max_gpus", "10000", "Most GPUs.").at_least(1).unimplemented(),
    K::integer("elasticity.min_time", "0", "Minimum running time in minutes.").at_least(0).unimplemented(),
    K::number("elasticity.version", "0.2", "Elasticity algorithm version.").unimplemented(),
    K::boolean("elasticity.ignore_non_elastic_batch_info", "false", "Ignore the batch keys instead of failing.").unimplemented(),
    K::integer("elasticity.num_gpus_per_node", "1", "GPUs per node.").at_least(1).unimplemented(),
    K::integer("elasticity.model_parallel_size", "1", "Model-parallel size.").at_least(1).unimplemented(),
    K::boolean("elasticity.prefer_larger_batch", "true", "Prefer the larger batch among equals.").unimplemented(),
    K::object("autotuning", "DeepSpeed's autotuner, driven by `deepspeed --autotuning`; the block alone does nothing.").open().ignored(),
    K::boolean("autotuning.enabled", "false", "Enable the autotuner.").ignored(),
    K::object("compression_training", "Quantization, pruning and distillation during training.").open().unimplemented(),
    K::object("quantize_training", "MoQ quantization during training (also holds the eigenvalue block).").open().unimplemented(),
    K::boolean("quantize_training.enabled", "false", "Quantize during training.").unimplemented(),
    K::object("sparse_attention", "DeepSpeed sparse attention kernels (models that use SparseSelfAttention).").open().unimplemented(),
    K::object("progressive_layer_drop", "Progressive layer dropping (models that accept its arguments).").unimplemented(),
    K::boolean("progressive_layer_drop.enabled", "false", "Drop layers progressively.").unimplemented(),
    K::number("progressive_layer_drop.theta", "1.0", "Keep-probability floor.").unimplemented(),
    K::number("progressive_layer_drop.gamma", "0.001", "Decay rate of the keep-probability.").unimplemented(),
    K::object("curriculum_learning", "Legacy curriculum learning (sequence-length curriculum).").open().unimplemented(),
    K::boolean("curriculum_learning.enabled", "false", "Enable the curriculum.").unimplemented(),
    K::object("data_efficiency", "Data sampling and routing (curriculum, random-LTD).").open().unimplemented(),
    K::boolean("data_efficiency.enabled", "false", "Enable data efficiency features.").unimplemented(),
    K::object("hybrid_engine", "RLHF hybrid training/inference engine.").ignored(),
    K::boolean("hybrid_engine.enabled", "false", "Enable the hybrid engine.").ignored(),
    K::integer("hybrid_engine.max_out_tokens", "512", "Generation length.").at_least(1).ignored(),
    K::integer("hybrid_engine.inference_tp_size", "1", "Tensor-parallel size for generation.").at_least(1).ignored(),
    K::boolean("hybrid_engine.release_inference_cache", "false", "Free the inference cache after generation.").ignored(),
    K::boolean("hybrid_engine.pin_parameters", "true", "Pin parameters for generation.").ignored(),
    K::integer("hybrid_engine.tp_gather_partition_size", "8", "Tensor-parallel gather partition size.").at_least(1).ignored(),
    K::object("tensor_parallel", "Automatic tensor parallelism for training.").open().unimplemented(),
    K::integer("tensor_parallel.autotp_size", "0", "Tensor-parallel degree (0: off).").at_least(0).unimplemented(),
    K::object("nebula", "Azure Nebula checkpoint service.").open().ignored(),
    K::boolean("nebula.enabled", "false", "Use Nebula.").ignored(),
    K::object("weight_quantization", "Inference weight quantization.").open().ignored(),
};

}  // namespace

std::span<const KeySpec> config_table() { return k_table; }

}  // namespace ds::config
