#include "zero/progress.hpp"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/error.hpp"
#include "base/log.hpp"
#include "zero/estimate.hpp"

namespace ds::zero {
namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t status_kib(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(status, line))
    if (line.compare(0, n, key) == 0) return std::stoll(line.substr(n + 1)) * 1024;
  return 0;
}

constexpr double k_print_every_seconds = 2.0;

}  // namespace

std::string format_rate(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e4) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

int64_t process_rss_bytes() { return status_kib("VmRSS:"); }
int64_t process_peak_rss_bytes() { return status_kib("VmHWM:"); }

ProgressPrinter::ProgressPrinter(ProgressOptions options) : m_options(options), m_start(now_seconds()), m_window_start(m_start) {}

void ProgressPrinter::step(const StepRecord& r, bool last) {
  const double now = now_seconds();
  if (m_tokens_at_start < 0) m_tokens_at_start = r.tokens - r.tokens_per_step;
  const bool first = r.step == m_options.start_step + 1;
  bool due;
  if (m_options.interval_steps > 0) due = r.step % m_options.interval_steps == 0;
  else due = now - m_last_print >= k_print_every_seconds;
  if (!(due || first || last || r.val_loss)) return;

  const double elapsed = now - m_start;
  const int64_t steps_done = r.step - m_options.start_step;
  const double per_step = elapsed / static_cast<double>(std::max<int64_t>(steps_done, 1));
  const double eta = per_step * static_cast<double>(m_options.total_steps - r.step);
  // Throughput over the steps since the last line (the first step includes start-up).
  const double window = now - m_window_start;
  const double tokens_per_s = window > 0 ? static_cast<double>(r.tokens - m_tokens_at_start - m_window_tokens) / window : 0;
  m_window_tokens = r.tokens - m_tokens_at_start;
  m_window_start = now;
  m_last_print = now;

  std::ostringstream line;
  const int width = static_cast<int>(std::to_string(m_options.total_steps).size());
  char buf[128];
  std::snprintf(buf, sizeof buf, "step %*lld/%lld", width, static_cast<long long>(r.step), static_cast<long long>(m_options.total_steps));
  line << buf;
  std::snprintf(buf, sizeof buf, " | loss %.4f", r.loss);
  line << buf;
  if (r.val_loss) {
    std::snprintf(buf, sizeof buf, " | val %.4f", *r.val_loss);
    line << buf;
  }
  std::snprintf(buf, sizeof buf, " | lr %.2e", r.lrs.empty() ? 0.0 : r.lrs[0]);
  line << buf;
  if (r.grad_norm >= 0) std::snprintf(buf, sizeof buf, " | grad norm %.3g", r.grad_norm);
  else std::snprintf(buf, sizeof buf, " | grad norm inf/nan");
  line << buf;
  if (m_options.fp16) {
    std::snprintf(buf, sizeof buf, " | scale %g | skipped %lld", r.loss_scale, static_cast<long long>(r.skipped_total));
    line << buf;
  }
  line << " | " << format_rate(tokens_per_s) << " tok/s";
  line << " | mem " << format_bytes(r.memory.total_current()) << " (rss " << format_bytes(process_rss_bytes()) << ")";
  line << " | " << format_duration(std::chrono::duration<double>(elapsed)) << " elapsed";
  if (!last) line << ", ETA " << format_duration(std::chrono::duration<double>(eta));
  if (m_options.breakdown) {
    std::snprintf(buf, sizeof buf, " | ms: fwd %.1f bwd %.1f reduce-wait %.1f optim %.1f gather %.1f total %.1f",
                  r.times.forward * 1e3, r.times.backward * 1e3, r.times.reduce_wait * 1e3, r.times.optimizer * 1e3,
                  r.times.gather * 1e3, r.times.total * 1e3);
    line << buf;
  }
  log::info(line.str());
}

MetricsWriter::MetricsWriter(const std::string& path) : m_path(path) {
  m_file = std::fopen(path.c_str(), "a");
  if (!m_file) throw IoError("cannot open the metrics file " + path + ": " + std::strerror(errno) + "; check --metrics");
}

MetricsWriter::~MetricsWriter() {
  if (m_file) std::fclose(m_file);
}

void MetricsWriter::write(const StepRecord& r, double elapsed_seconds) {
  nlohmann::json j = {{"step", r.step},
                      {"loss", r.loss},
                      {"lr", r.lrs},
                      {"grad_norm", r.grad_norm},
                      {"loss_scale", r.loss_scale},
                      {"applied", r.applied},
                      {"skipped_total", r.skipped_total},
                      {"tokens", r.tokens},
                      {"elapsed_s", elapsed_seconds},
                      {"time_s", {{"forward", r.times.forward}, {"backward", r.times.backward},
                                  {"reduce_wait", r.times.reduce_wait}, {"optimizer", r.times.optimizer},
                                  {"gather", r.times.gather}, {"total", r.times.total}}},
                      {"tokens_per_s", r.times.total > 0 ? static_cast<double>(r.tokens_per_step) / r.times.total : 0.0},
                      {"memory", r.memory.to_json()},
                      {"rss_bytes", process_rss_bytes()}};
  if (r.val_loss) j["val_loss"] = *r.val_loss;
  write_summary(j);
}

void MetricsWriter::write_summary(const nlohmann::json& record) {
  const std::string text = record.dump() + "\n";
  if (std::fwrite(text.data(), 1, text.size(), m_file) != text.size() || std::fflush(m_file) != 0)
    throw IoError("cannot write the metrics file " + m_path + ": " + std::strerror(errno));
}

}  // namespace ds::zero
