// Test support for the engine: run a data-parallel training of a small GPT with ranks as threads
// of this process (MemoryStore + real GlooComm over loopback), and collect the final parameters.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/gpt_config.hpp"
#include "zero/engine.hpp"

namespace ds::test {

struct EngineRun {
  model::GptConfig model;
  int world = 1;
  int micro_batch = 2;
  int grad_accum = 1;
  int seq_len = 8;
  int steps = 3;
  int start_step = 0;            // the first step's index (a resumed run continues the data from here)
  uint64_t seed = 7;
  double lr = 1e-2;
  zero::EngineOptions options;   // stage, dtypes, buckets... (groups filled by run_engine when empty)
  // Called on every rank after construction (e.g. to load a checkpoint) and after every step.
  std::function<void(zero::Engine&, comm::Comm&, int step)> after_step;
  std::function<void(zero::Engine&, comm::Comm&)> after_init;
};

struct EngineResult {
  std::vector<float> master;               // every unit's unpadded fp32 master, concatenated
  std::vector<float> exp_avg;
  std::vector<std::vector<float>> losses;  // per step, per rank
  std::vector<zero::StepResult> steps;     // rank 0's
  std::vector<zero::MemoryReport> memory;  // per rank, at the end
};

// A small GPT whose unit sizes are not multiples of the world size (checked by the tests).
model::GptConfig small_gpt();

// Default options: fp32, AdamW with decay/no_decay groups, everything else DeepSpeed's default.
zero::EngineOptions default_options(const model::GptConfig& model, int stage);

// Trains `run.steps` optimizer steps on deterministic synthetic tokens: global sample j of step s
// is the same whatever the world size; rank r, micro-step k, row i takes j = (k·world + r)·mb + i.
EngineResult run_engine(const EngineRun& run);

// ‖a − b‖ / ‖b‖ (L2 over all elements); infinity when sizes differ or a NaN shows up.
double rel_l2_diff(const std::vector<float>& a, const std::vector<float>& b);

}  // namespace ds::test
