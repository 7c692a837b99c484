// dsworker's command line: `dsworker [train] FLAGS`, `dsworker export`, `dsworker estimate`,
// `dsworker corpus`. Parsing only (CLI11); apps/worker/main.cpp runs what was asked.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "zero/train_options.hpp"

namespace ds::zero {

struct ExportCommand {
  std::string checkpoint;      // a save_dir (latest) or a tag directory
  std::string out_dir;
  DType dtype = DType::f32;
};

struct EstimateCommand {
  std::string model = "gpt2";
  std::optional<int64_t> params;  // instead of a model: a parameter count
  int gpus_per_node = 1;
  int nodes = 1;
  int64_t micro_batch = 1;
  std::optional<int> seq_len;
  config::Precision precision = config::Precision::bf16;
  std::optional<std::string> config_path;
};

struct CorpusCommand {
  std::string out;             // ".bin": llm.c tokens; anything else: text
  int64_t bytes = 0;           // 0: the default size
};

// What was asked; `help_text` set means print it and exit 0.
struct WorkerCommand {
  std::variant<TrainOptions, ExportCommand, EstimateCommand, CorpusCommand> command;
  std::string help_text;
};

// Throws UsageError (one line naming the flag and the problem).
WorkerCommand parse_worker_command(const std::vector<std::string>& args);

}  // namespace ds::zero
