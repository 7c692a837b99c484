// `dsworker train`: one rank of a data-parallel GPT training run, end to end.
//
//   World (env) → store client (dslaunch's, with the job token) → ds_config (shipped by dslaunch
//   through the store, else --deepspeed FILE, else flags only) with "auto" resolved → Comm (Gloo
//   over the store) → memory preflight → Gpt + Engine → data → [resume] → steps with progress,
//   metrics, validation and checkpoints → final checkpoint and summary.
//
// Rank 0 prints the resolved config once, the config warnings, a progress line every few seconds
// (or every steps_per_print / --log_interval steps): step, loss, lr, gradient norm, tokens/s,
// memory, elapsed and ETA; with wall_clock_breakdown, where the step's time went. It writes one
// JSON object per step to --metrics.
#pragma once

#include "zero/train_options.hpp"

namespace ds::zero {

// Runs the whole training of this rank; returns when every step ran (and the final checkpoint is
// written). Throws the typed errors of everything it drives (ConfigError, UsageError,
// ResourceError from the preflight, RendezvousError, CommError, CheckpointError, NumericsError...).
void run_training(const TrainOptions& options);

}  // namespace ds::zero
