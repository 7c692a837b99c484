// Batches of training windows, defined at the level of the GLOBAL batch so that a run sees the same
// data whatever its world size.
//
// Sampling (the choice, and why). The dataset's windows of T+1 tokens (TokenDataset::window_count)
// are visited in epochs: each epoch is a keyed pseudo-random permutation of all windows
// (data_shuffle.hpp), a fresh permutation per epoch. So every window is seen exactly once per epoch
// (unlike sampling with replacement), and the order is a pure function of (seed, epoch, index):
// nothing but a counter needs saving to resume.
//
// Global sample g (counted from the start of training) is window
//     permutation_{seed, epoch = g / W}(g mod W)        with W windows in the loader's range.
// Optimizer step s covers global samples [s·train_batch_size, (s+1)·train_batch_size); within it,
// rank r at micro-step k (of gradient_accumulation_steps) takes rows i ∈ [0, micro_batch) as
//     j = (k · world_size + r) · micro_batch + i,
// so the union of all ranks' micro-batches of a step is the same set of windows for world sizes
// 1, 2, 4, ... with the same train_batch_size (= micro_batch · grad_accum · world_size).
//
// Train/validation: a loader reads a WindowRange of the dataset. split_train_val() holds out the
// last windows (in file order) for validation; or give the validation loader its own dataset.
// Validation uses SampleOrder::sequential (window g mod W, no shuffle) and reset() before each
// evaluation, so every evaluation reads the same val_batches batches.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/data_set.hpp"

namespace ds::model {

enum class SampleOrder : uint8_t {
  shuffled,    // training: a new permutation of all windows every epoch
  sequential,  // validation: windows in file order, wrapping around
};

// Windows [first, first + count) of a dataset, in file order. count < 0: to the last window.
struct WindowRange {
  int64_t first = 0;
  int64_t count = -1;
};

struct TrainValSplit {
  WindowRange train;
  WindowRange val;
};

// Holds out the last ceil(windows · val_fraction) windows (at least 1 when val_fraction > 0) for
// validation. Throws IoError naming the dataset when it has no window of seq_len+1 tokens, or too
// few to leave any for training.
TrainValSplit split_train_val(const TokenDataset& data, int64_t seq_len, double val_fraction);

struct DataLoaderOptions {
  int64_t seq_len = 0;       // T: tokens per row of inputs (and of targets)
  int64_t micro_batch = 0;   // B: rows per rank per micro-step (train_micro_batch_size_per_gpu)
  int64_t grad_accum = 1;    // micro-steps per optimizer step (gradient_accumulation_steps)
  int world_size = 1;
  int rank = 0;
  uint64_t seed = 0;
  SampleOrder order = SampleOrder::shuffled;
  WindowRange windows = WindowRange{};  // which windows of the dataset this loader reads ("= {}": no -Wextra noise at designated inits)
  int64_t vocab_size = 0;    // > 0: a token >= vocab_size is an IoError naming the file and position
};

class DataLoader {
 public:
  // Throws IoError when the range holds no window (dataset too small for seq_len); checks (DS_CHECK)
  // the arithmetic of the options.
  DataLoader(std::shared_ptr<const TokenDataset> data, const DataLoaderOptions& options);

  // Fills this rank's next micro-batch: inputs and targets are (B,T), row-major;
  // targets[b][t] = inputs[b][t+1] within the window, the last target being token T of the window.
  // Advances to the next micro-step (and, after grad_accum of them, the next optimizer step).
  // Throws IoError if a token is outside the vocabulary (options.vocab_size).
  void next_micro_batch(int32_t* inputs, int32_t* targets);

  int64_t step() const { return m_step; }               // optimizer steps completed
  int64_t micro_step() const { return m_micro_step; }   // micro-steps done in the current step
  int64_t epoch() const;                                // epoch of the current step's first sample
  int64_t window_count() const { return m_window_count; }   // samples per epoch
  int64_t train_batch_size() const;                     // micro_batch · grad_accum · world_size
  const DataLoaderOptions& options() const { return m_options; }

  // Back to step 0 of epoch 0 (validation passes start here every time).
  void reset();

  // The loader's position and everything that defines its order, as JSON:
  //   {"format":"dslaunch.data_loader","version":1,"seed":..,"order":"shuffled","seq_len":..,
  //    "windows":{"first":..,"count":..},"train_batch_size":..,"step":..,"micro_step":..,
  //    "sample":<global index of the current step's first sample>,"epoch":..}
  nlohmann::json state() const;
  // Continues exactly where state() was taken: the next micro-batch is the one that would have come
  // next. The state's seed and order win over the options'. A different world size is fine at a step
  // boundary (the position is a global sample index). Throws CheckpointError when the state does not
  // fit this loader (another seq_len or dataset, a changed train_batch_size mid-step, a malformed state).
  void restore(const nlohmann::json& state);

  // Window (index into the dataset's windows) of global sample g; for tests and tools.
  int64_t window_of_sample(int64_t global_sample) const;
  // Reads window w (T+1 tokens) into out.
  void read_window(int64_t window, int32_t* out) const;

 private:
  std::shared_ptr<const TokenDataset> m_data;
  DataLoaderOptions m_options;
  int64_t m_window_first = 0;
  int64_t m_window_count = 0;
  std::vector<int64_t> m_shard_first_window;  // prefix sums of windows per shard (shards + 1)
  int64_t m_step = 0;
  int64_t m_micro_step = 0;
  int64_t m_sample_base = 0;                  // global index of the current step's first sample
  std::vector<int32_t> m_row;                 // one window, T+1 tokens
};

}  // namespace ds::model
