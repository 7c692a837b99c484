// What a training run shows while it runs (rank 0): a progress line every few seconds or every N
// steps, and one JSON object per step in the metrics file.
//
//   step   40/200 | loss 2.4512 | lr 1.00e-03 | grad norm 0.84 | 31.2k tok/s | mem 0.21 GiB (rss 0.35 GiB) | 0:12 elapsed, ETA 0:48
//
// fp16 runs add the loss scale and skipped steps; wall_clock_breakdown adds where the step's time
// went (forward, backward, waiting for gradient reduction, optimizer, parameter gather).
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/format.hpp"
#include "zero/engine.hpp"

namespace ds::zero {

struct StepTimes {      // seconds
  double forward = 0, backward = 0, reduce_wait = 0, optimizer = 0, gather = 0, total = 0;
};

struct StepRecord {
  int64_t step = 0;              // optimizer steps done, this one included
  double loss = 0;               // mean over ranks and micro-steps
  std::vector<double> lrs;       // per param group, as used by this step
  double grad_norm = 0;          // -1: non-finite
  double loss_scale = 1;
  bool applied = true;
  int64_t skipped_total = 0;
  int64_t tokens = 0;            // seen since the start of training (all ranks)
  int64_t tokens_per_step = 0;
  StepTimes times;
  MemoryReport memory;
  std::optional<double> val_loss;
};

struct ProgressOptions {
  int64_t total_steps = 0;
  int64_t start_step = 0;
  int64_t interval_steps = 0;    // 0: every ~2 s (and the first and last step)
  bool breakdown = false;        // wall_clock_breakdown
  bool fp16 = false;
};

class ProgressPrinter {
 public:
  explicit ProgressPrinter(ProgressOptions options);
  // Prints the line for this step if it is due (always for the first and last step).
  void step(const StepRecord& record, bool last);

 private:
  ProgressOptions m_options;
  double m_start = 0;            // seconds (steady clock) at construction
  double m_last_print = -1e9;
  int64_t m_tokens_at_start = -1;
  double m_window_start = 0;
  int64_t m_window_tokens = 0;
};

// JSON lines, one per step; flushed after every line so `tail -f` follows the run.
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& path);  // throws IoError naming the path
  ~MetricsWriter();
  void write(const StepRecord& record, double elapsed_seconds);
  void write_summary(const nlohmann::json& record);

 private:
  std::string m_path;
  std::FILE* m_file = nullptr;
};

std::string format_rate(double per_second);    // "812", "31.2k", "1.25M"
int64_t process_rss_bytes();                   // VmRSS of this process
int64_t process_peak_rss_bytes();              // VmHWM of this process

}  // namespace ds::zero
