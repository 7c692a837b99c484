#include "model/data_loader.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "model/data_shuffle.hpp"
#include "base/check.hpp"
#include "base/error.hpp"
#include "base/log.hpp"

namespace ds::model {
namespace {

constexpr const char* k_state_format = "dslaunch.data_loader";
constexpr int k_state_version = 1;

std::string describe(const TokenDataset& data) {
  return "dataset '" + data.description() + "' (" + std::to_string(data.total_tokens()) + " tokens in " +
         std::to_string(data.shards().size()) + (data.shards().size() == 1 ? " file)" : " files)");
}

[[noreturn]] void no_windows(const TokenDataset& data, int64_t seq_len) {
  throw IoError(describe(data) + " has no window of seq_len+1 = " + std::to_string(seq_len + 1) +
                " tokens within one file; use a shorter sequence length or more data");
}

const char* order_name(SampleOrder order) { return order == SampleOrder::shuffled ? "shuffled" : "sequential"; }

// Reads a required member of a saved state; a missing or mistyped one is a CheckpointError.
template <typename T>
T state_field(const nlohmann::json& state, const char* key) {
  if (!state.is_object() || !state.contains(key))
    throw CheckpointError(std::string("data loader state lacks '") + key + "': the checkpoint is damaged or not ours");
  try {
    return state.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw CheckpointError(std::string("data loader state has a malformed '") + key + "': " + state.at(key).dump());
  }
}

}  // namespace

TrainValSplit split_train_val(const TokenDataset& data, int64_t seq_len, double val_fraction) {
  if (!(val_fraction >= 0.0 && val_fraction < 1.0))
    throw UsageError("validation fraction " + std::to_string(val_fraction) + " is outside [0, 1)");
  const int64_t windows = data.window_count(seq_len);
  if (windows == 0) no_windows(data, seq_len);
  int64_t val = 0;
  if (val_fraction > 0.0) val = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(windows) * val_fraction)));
  if (windows - val < 1)
    throw IoError(describe(data) + " has only " + std::to_string(windows) + " window(s) of " + std::to_string(seq_len + 1) +
                  " tokens, too few to hold out a validation part and still train; use more data or a separate validation file");
  return {WindowRange{0, windows - val}, WindowRange{windows - val, val}};
}

DataLoader::DataLoader(std::shared_ptr<const TokenDataset> data, const DataLoaderOptions& options)
    : m_data(std::move(data)), m_options(options) {
  DS_CHECK(m_data != nullptr, "DataLoader without a dataset");
  DS_CHECK(options.seq_len > 0 && options.micro_batch > 0 && options.grad_accum > 0, "seq_len ", options.seq_len,
           ", micro_batch ", options.micro_batch, ", grad_accum ", options.grad_accum);
  DS_CHECK(options.world_size >= 1 && options.rank >= 0 && options.rank < options.world_size, "rank ", options.rank,
           " of world size ", options.world_size);
  const int64_t T = options.seq_len;
  m_shard_first_window.push_back(0);
  for (const TokenShard& shard : m_data->shards())
    m_shard_first_window.push_back(m_shard_first_window.back() + (shard.size() > T ? (shard.size() - 1) / T : 0));
  const int64_t total = m_shard_first_window.back();
  if (total == 0) no_windows(*m_data, T);
  const WindowRange range = options.windows;
  DS_CHECK(range.first >= 0 && range.first < total, "window range starts at ", range.first, " of ", total, " windows");
  m_window_first = range.first;
  m_window_count = range.count < 0 ? total - range.first : range.count;
  DS_CHECK(m_window_count > 0 && m_window_first + m_window_count <= total, "window range [", range.first, ", +",
           m_window_count, ") of ", total, " windows");
  if (options.vocab_size > 0 && options.vocab_size < m_data->token_limit() && m_data->token_limit() == 256)
    throw UsageError(describe(*m_data) + " is read as bytes (256 token ids), more than the model's vocabulary of " +
                     std::to_string(options.vocab_size) + "; use a vocabulary of at least 256");
  m_row.resize(static_cast<size_t>(T + 1));
}

int64_t DataLoader::train_batch_size() const {
  return m_options.micro_batch * m_options.grad_accum * m_options.world_size;
}

int64_t DataLoader::epoch() const { return m_sample_base / m_window_count; }

int64_t DataLoader::window_of_sample(int64_t global_sample) const {
  DS_CHECK(global_sample >= 0, "sample ", global_sample);
  const auto W = static_cast<uint64_t>(m_window_count);
  const auto g = static_cast<uint64_t>(global_sample);
  const uint64_t position = g % W;
  const uint64_t local =
      m_options.order == SampleOrder::shuffled ? shuffle_index(position, W, epoch_key(m_options.seed, g / W)) : position;
  return m_window_first + static_cast<int64_t>(local);
}

void DataLoader::read_window(int64_t window, int32_t* out) const {
  const auto it = std::upper_bound(m_shard_first_window.begin(), m_shard_first_window.end(), window);
  DS_CHECK(window >= 0 && it != m_shard_first_window.end(), "window ", window, " of ", m_shard_first_window.back());
  const auto shard = static_cast<size_t>(it - m_shard_first_window.begin() - 1);
  const int64_t T = m_options.seq_len;
  const int64_t start = (window - m_shard_first_window[shard]) * T;
  m_data->shards()[shard].read(start, T + 1, out);  // read() checks the window lies inside the shard
  if (m_options.vocab_size > 0) {
    for (int64_t t = 0; t <= T; ++t) {
      if (out[t] >= m_options.vocab_size)
        throw IoError("data file '" + m_data->shards()[shard].name() + "' holds token " + std::to_string(out[t]) +
                      " at position " + std::to_string(start + t) + ", outside the model's vocabulary of " +
                      std::to_string(m_options.vocab_size) + " tokens (was it tokenized for another model?)");
    }
  }
}

void DataLoader::next_micro_batch(int32_t* inputs, int32_t* targets) {
  const int64_t T = m_options.seq_len;
  const int64_t B = m_options.micro_batch;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t j = (m_micro_step * m_options.world_size + m_options.rank) * B + i;
    read_window(window_of_sample(m_sample_base + j), m_row.data());
    std::copy(m_row.begin(), m_row.begin() + T, inputs + i * T);
    std::copy(m_row.begin() + 1, m_row.end(), targets + i * T);
  }
  if (++m_micro_step == m_options.grad_accum) {
    m_micro_step = 0;
    ++m_step;
    m_sample_base += train_batch_size();
  }
}

void DataLoader::reset() {
  m_step = 0;
  m_micro_step = 0;
  m_sample_base = 0;
}

nlohmann::json DataLoader::state() const {
  return {
      {"format", k_state_format},
      {"version", k_state_version},
      {"seed", m_options.seed},
      {"order", order_name(m_options.order)},
      {"seq_len", m_options.seq_len},
      {"windows", {{"first", m_window_first}, {"count", m_window_count}}},
      {"train_batch_size", train_batch_size()},
      {"step", m_step},
      {"micro_step", m_micro_step},
      {"sample", m_sample_base},
      {"epoch", epoch()},
  };
}

void DataLoader::restore(const nlohmann::json& state) {
  if (state_field<std::string>(state, "format") != k_state_format)
    throw CheckpointError("data loader state has format '" + state.at("format").get<std::string>() + "', expected '" +
                          k_state_format + "'");
  const int version = state_field<int>(state, "version");
  if (version != k_state_version)
    throw CheckpointError("data loader state has version " + std::to_string(version) + "; this build reads version " +
                          std::to_string(k_state_version));
  const auto seq_len = state_field<int64_t>(state, "seq_len");
  if (seq_len != m_options.seq_len)
    throw CheckpointError("the checkpoint's data position was saved with seq_len " + std::to_string(seq_len) +
                          ", this run uses " + std::to_string(m_options.seq_len) + "; resume with the same sequence length");
  if (!state.contains("windows") || !state.at("windows").is_object())
    throw CheckpointError("data loader state lacks 'windows': the checkpoint is damaged or not ours");
  const auto first = state_field<int64_t>(state.at("windows"), "first");
  const auto count = state_field<int64_t>(state.at("windows"), "count");
  if (first != m_window_first || count != m_window_count)
    throw CheckpointError("the checkpoint's data position is for windows [" + std::to_string(first) + ", +" +
                          std::to_string(count) + ") of its dataset, this run's " + describe(*m_data) + " has [" +
                          std::to_string(m_window_first) + ", +" + std::to_string(m_window_count) +
                          "): the data changed since the checkpoint; resume on the same data");
  const auto order_text = state_field<std::string>(state, "order");
  SampleOrder order;
  if (order_text == "shuffled") order = SampleOrder::shuffled;
  else if (order_text == "sequential") order = SampleOrder::sequential;
  else throw CheckpointError("data loader state has order '" + order_text + "', expected 'shuffled' or 'sequential'");
  const auto seed = state_field<uint64_t>(state, "seed");
  const auto step = state_field<int64_t>(state, "step");
  const auto micro_step = state_field<int64_t>(state, "micro_step");
  const auto sample = state_field<int64_t>(state, "sample");
  const auto saved_batch = state_field<int64_t>(state, "train_batch_size");
  if (step < 0 || sample < 0 || micro_step < 0 || micro_step >= m_options.grad_accum)
    throw CheckpointError("data loader state has step " + std::to_string(step) + ", micro_step " + std::to_string(micro_step) +
                          ", sample " + std::to_string(sample) + ", which do not fit gradient_accumulation_steps " +
                          std::to_string(m_options.grad_accum));
  if (micro_step != 0 && saved_batch != train_batch_size())
    throw CheckpointError("the checkpoint's data position is in the middle of an optimizer step of train_batch_size " +
                          std::to_string(saved_batch) + ", this run's is " + std::to_string(train_batch_size()) +
                          "; resume from a checkpoint taken at a step boundary, or with the same batch size");
  if (seed != m_options.seed)
    log::info("data: resuming the data order of seed ", seed, " (this run's seed ", m_options.seed,
              " applies to fresh starts only)");
  m_options.seed = seed;
  m_options.order = order;
  m_step = step;
  m_micro_step = micro_step;
  m_sample_base = sample;
}

}  // namespace ds::model
