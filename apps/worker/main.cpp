// dsworker: a thin main over lib/zero. `dsworker [train]` trains one rank (started by dslaunch),
// `export` writes Hugging Face safetensors from a checkpoint, `estimate` prints memory needs,
// `corpus` writes the built-in corpus. Every user-caused error ends as one line,
// "dsworker: error: <message>", with its type's exit code (runtime/error.hpp).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "model/data.hpp"
#include "model/gpt.hpp"
#include "model/gpt_layout.hpp"
#include "config/config.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "zero/checkpoint.hpp"
#include "zero/estimate.hpp"
#include "zero/trainer.hpp"
#include "zero/worker_cli.hpp"

namespace {

using namespace ds;

void run_estimate(const zero::EstimateCommand& c) {
  zero::EstimateInput in;
  in.gpus_per_node = c.gpus_per_node;
  in.nodes = c.nodes;
  in.compute_dtype = c.precision == config::Precision::fp32 ? DType::f32 : c.precision == config::Precision::bf16 ? DType::bf16 : DType::f16;
  in.comm_dtype = in.compute_dtype;
  std::string batch;
  if (c.params) {
    in.model_name = std::to_string(*c.params) + " parameters";
    in.params = *c.params;
    in.largest_unit = *c.params / 50;  // no layout: assume ~50 units of equal size
    batch = "no activations counted (--params)";
  } else {
    const auto mc = model::parse_model_spec(c.model);
    const auto layout = model::gpt_layout(mc);
    in.model_name = model::describe(mc);
    in.params = layout.total_numel();
    for (const auto& u : layout.units) in.largest_unit = std::max(in.largest_unit, u.numel);
    const int T = c.seq_len.value_or(mc.seq_len);
    in.activation_bytes = model::Gpt::activation_bytes(mc, in.compute_dtype, static_cast<int>(c.micro_batch), T);
    batch = "micro-batch " + std::to_string(c.micro_batch) + " x " + std::to_string(T) + " tokens";
  }
  if (c.config_path) {
    config::AutoValues av = zero::auto_values(zero::TrainOptions{}, 1024);
    const auto cfg = config::load_ds_config_file(*c.config_path, av, c.gpus_per_node * c.nodes, nullptr);
    const auto& z = cfg.zero;
    in.options.reduce_bucket_size = z.reduce_bucket_size;
    in.options.prefetch_bucket_size = z.prefetch_bucket_size;
    in.options.max_live_parameters = z.max_live_parameters;
    in.options.max_reuse_distance = z.max_reuse_distance;
    in.options.overlap_comm = z.overlap_comm ? zero::Overlap::yes : zero::Overlap::no;
  }
  std::fputs(zero::format_estimate_table(in, zero::estimate_all(in), batch).c_str(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
  log::set_program("dsworker");
  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    const zero::WorkerCommand cmd = zero::parse_worker_command(args);
    if (!cmd.help_text.empty()) {
      std::fputs(cmd.help_text.c_str(), stdout);
      return 0;
    }
    if (const auto* train = std::get_if<zero::TrainOptions>(&cmd.command)) {
      zero::run_training(*train);
    } else if (const auto* exp = std::get_if<zero::ExportCommand>(&cmd.command)) {
      const std::string tag_dir = zero::resolve_checkpoint_dir(exp->checkpoint);
      zero::export_hf(tag_dir, exp->out_dir, exp->dtype);
      log::info("exported ", tag_dir, " to ", exp->out_dir, "/model.safetensors and config.json (", dtype_name(exp->dtype), ")");
    } else if (const auto* est = std::get_if<zero::EstimateCommand>(&cmd.command)) {
      run_estimate(*est);
    } else if (const auto* corpus = std::get_if<zero::CorpusCommand>(&cmd.command)) {
      model::write_default_corpus(corpus->out, corpus->bytes > 0 ? static_cast<size_t>(corpus->bytes) : model::k_default_corpus_bytes);
      log::info("wrote the built-in corpus to ", corpus->out);
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "dsworker: error: %s\n", e.what());
    return e.exit_code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dsworker: error: internal: %s\n", e.what());
    return static_cast<int>(ExitCode::internal);
  }
}
