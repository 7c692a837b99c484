#include "zero/worker_cli.hpp"

#include <CLI/CLI.hpp>

#include "base/error.hpp"

namespace ds::zero {
namespace {

// CLI11 parses argv as a C program receives it; our vector is argv[1..].
WorkerCommand parse_with(CLI::App& app, std::vector<std::string> args, WorkerCommand out) {
  std::reverse(args.begin(), args.end());  // CLI11's vector form takes arguments in reverse order
  try {
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    out.help_text = app.help();
  } catch (const CLI::ParseError& e) {
    throw UsageError(std::string(e.what()) + " (see dsworker " + (app.get_name() == "dsworker" ? "" : app.get_name() + " ") + "--help)");
  }
  return out;
}

config::Precision parse_precision(const std::string& text) {
  if (text == "fp32") return config::Precision::fp32;
  if (text == "bf16") return config::Precision::bf16;
  if (text == "fp16") return config::Precision::fp16;
  throw UsageError("--precision '" + text + "' is not one of fp32, bf16, fp16");
}

WorkerCommand parse_train(const std::vector<std::string>& args) {
  TrainOptions o;
  CLI::App app("dsworker train: one rank of a data-parallel GPT-2 training run with ZeRO (start it with dslaunch)", "dsworker");
  // A flag given twice takes its last value, as Python's argparse does (the training scripts
  // dsworker stands in for), so a wrapper's extra arguments override its defaults:
  // `scripts/run.sh --steps 30` runs dsworker with `--steps 400 ... --steps 30`. Repeatable
  // flags (--param_group) still collect every value.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string precision, config, config_alt;
  std::optional<double> lr;
  app.add_option("--deepspeed", config, "DeepSpeed config (ds_config.json); dslaunch ships it through its store");
  app.add_option("--deepspeed_config", config_alt, "Same as --deepspeed");
  app.add_option("--model", o.model, "Model: tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl, gpt2-2.7b, gpt2-6.7b, gpt2-13b, or "
                                     "'n_layer=..,n_head=..,n_embd=..,seq_len=..,vocab_size=..'")->capture_default_str();
  app.add_option("--data", o.data, "Training data: llm.c .bin shards (file, directory or glob) or text files (bytes as tokens); "
                                   "default: the built-in generated corpus");
  app.add_option("--steps", o.steps, "Optimizer steps of the run")->capture_default_str();
  app.add_option("--lr", o.lr, "Learning rate (resolves \"auto\"; must agree with the config otherwise)");
  app.add_option("--micro_batch,--micro_batch_size", o.micro_batch, "Sequences per rank per micro-step (train_micro_batch_size_per_gpu)");
  app.add_option("--grad_accum_steps", o.grad_accum, "Micro-steps per optimizer step (gradient_accumulation_steps)");
  app.add_option("--seq_len", o.seq_len, "Tokens per sequence (default: the model's seq_len)");
  app.add_option("--weight_decay", o.weight_decay, "AdamW weight decay (not applied to biases and LayerNorm)");
  app.add_option("--adam_beta1", o.adam_beta1, "Adam beta1");
  app.add_option("--adam_beta2", o.adam_beta2, "Adam beta2");
  app.add_option("--adam_eps", o.adam_eps, "Adam epsilon");
  app.add_option("--max_grad_norm", o.max_grad_norm, "Gradient clipping by global norm (gradient_clipping); 0: off");
  app.add_option("--warmup_steps", o.warmup_steps, "Warm-up steps of the schedule (resolves \"auto\")");
  app.add_option("--precision", precision, "fp32, bf16 or fp16 (resolves \"enabled\": \"auto\"; without a config: the precision)");
  app.add_option("--seed", o.seed, "Seed of the initial weights and of the data order")->capture_default_str();
  app.add_option("--save_dir", o.save_dir, "Where checkpoints go (a directory per tag, 'latest' pointing at the newest)");
  app.add_option("--save_interval", o.save_interval, "Steps between checkpoints (0: only at the end)")->capture_default_str();
  app.add_option("--resume", o.resume, "Resume from a save_dir (its latest) or a tag directory; any world size or stage");
  app.add_option("--metrics", o.metrics_path, "Append one JSON line per step here (rank 0)");
  app.add_option("--device", o.device, "auto, cpu or cuda")->capture_default_str();
  app.add_option("--param_group", o.param_groups, "Parameter group: 'REGEX:lr=X,weight_decay=Y,beta1=..,beta2=..,eps=..' (repeatable)");
  app.add_option("--log_interval", o.log_interval, "Steps between progress lines (0: about every 2 s; steps_per_print wins)")->capture_default_str();
  app.add_option("--eval_interval", o.eval_interval, "Steps between validation losses (0: at the end only)")->capture_default_str();
  app.add_option("--val_batches", o.val_batches, "Micro-batches per validation")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads per rank (default: OMP_NUM_THREADS, else cores / ranks per host)");
  app.add_option("--zero_stage", o.stage, "Override zero_optimization.stage");
  app.add_flag("--skip_memory_check", o.skip_preflight, "Start even when the memory estimate says it will not fit");
  app.add_flag("--activation_checkpointing,--checkpoint_activations", o.activation_checkpointing,
               "Keep only each block's input and recompute its activations in backward (same losses, less memory)");
  int local_rank = 0;
  app.add_option("--local_rank", local_rank, "Accepted for DeepSpeed's launcher convention; LOCAL_RANK from the environment is used");
  WorkerCommand out = parse_with(app, args, {});
  if (!config.empty() && !config_alt.empty() && config != config_alt)
    throw UsageError("--deepspeed " + config + " and --deepspeed_config " + config_alt + " name different files: pass one");
  if (!config.empty()) o.config_path = config;
  else if (!config_alt.empty()) o.config_path = config_alt;
  if (!precision.empty()) o.precision = parse_precision(precision);
  out.command = o;
  return out;
}

WorkerCommand parse_export(const std::vector<std::string>& args) {
  ExportCommand c;
  CLI::App app("dsworker export: consolidate a checkpoint (any stage, any world size) into Hugging Face GPT-2 safetensors", "export");
  std::string dtype = "fp32";
  app.add_option("--checkpoint", c.checkpoint, "A save_dir (its latest) or a tag directory")->required();
  app.add_option("--out", c.out_dir, "Output directory: model.safetensors and config.json")->required();
  app.add_option("--dtype", dtype, "fp32, bf16 or fp16")->capture_default_str();
  WorkerCommand out = parse_with(app, args, {});
  c.dtype = parse_dtype(dtype);
  out.command = c;
  return out;
}

WorkerCommand parse_estimate(const std::vector<std::string>& args) {
  EstimateCommand c;
  CLI::App app("dsworker estimate: memory per GPU and per host for each ZeRO stage and offload choice", "estimate");
  std::string precision = "bf16";
  app.add_option("--model", c.model, "Model preset or spec")->capture_default_str();
  app.add_option("--params", c.params, "A parameter count instead of --model (activations then not counted)");
  app.add_option("--num_gpus,--nproc_per_node", c.gpus_per_node, "Ranks per node")->capture_default_str();
  app.add_option("--num_nodes,--nnodes", c.nodes, "Nodes")->capture_default_str();
  app.add_option("--micro_batch,--micro_batch_size", c.micro_batch, "Sequences per rank per micro-step")->capture_default_str();
  app.add_option("--seq_len", c.seq_len, "Tokens per sequence (default: the model's)");
  app.add_option("--precision", precision, "fp32, bf16 or fp16")->capture_default_str();
  app.add_option("--deepspeed", c.config_path, "A ds_config.json whose buckets and stage-3 settings to use");
  WorkerCommand out = parse_with(app, args, {});
  c.precision = parse_precision(precision);
  if (c.gpus_per_node < 1 || c.nodes < 1 || c.micro_batch < 1) throw UsageError("--num_gpus, --num_nodes and --micro_batch must be at least 1");
  out.command = c;
  return out;
}

WorkerCommand parse_corpus(const std::vector<std::string>& args) {
  CorpusCommand c;
  CLI::App app("dsworker corpus: write the built-in training corpus to a file", "corpus");
  app.add_option("--out", c.out, "Output file: llm.c tokens when it ends in .bin, text otherwise")->required();
  app.add_option("--bytes", c.bytes, "Size in bytes (default: the size training uses)");
  WorkerCommand out = parse_with(app, args, {});
  out.command = c;
  return out;
}

}  // namespace

WorkerCommand parse_worker_command(const std::vector<std::string>& args) {
  if (!args.empty()) {
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (args[0] == "train") return parse_train(rest);
    if (args[0] == "export") return parse_export(rest);
    if (args[0] == "estimate") return parse_estimate(rest);
    if (args[0] == "corpus") return parse_corpus(rest);
    if (args[0] == "--help" || args[0] == "-h") {
      WorkerCommand out = parse_train(args);
      out.help_text = "usage: dsworker [train] FLAGS | dsworker export ... | dsworker estimate ... | dsworker corpus ...\n\n" +
                      out.help_text;
      return out;
    }
  }
  return parse_train(args);
}

}  // namespace ds::zero
