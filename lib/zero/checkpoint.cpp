#include "zero/checkpoint.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "model/gpt_layout.hpp"
#include "base/atomic_file.hpp"
#include "base/check.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "zero/partition.hpp"
#include "zero/safetensors.hpp"

namespace fs = std::filesystem;

namespace ds::zero {
namespace {

const char* state_suffix(Engine::StateTensor which) {
  switch (which) {
    case Engine::StateTensor::master: return ".master";
    case Engine::StateTensor::exp_avg: return ".exp_avg";
    case Engine::StateTensor::exp_avg_sq: return ".exp_avg_sq";
  }
  return "";
}

constexpr Engine::StateTensor k_state_tensors[] = {Engine::StateTensor::master, Engine::StateTensor::exp_avg,
                                                   Engine::StateTensor::exp_avg_sq};

// Who owned what in a save of `world` ranks (Note [unit sharding]): the same arithmetic as
// Partition::owned_range, from the manifest's numbers alone.
std::pair<int64_t, int64_t> saved_owned_range(int64_t numel, int world, int64_t align, int rank) {
  const int64_t padded = round_up(std::max<int64_t>(numel, 1), world * align);
  const int64_t slice = padded / world;
  const int64_t b = std::min(numel, static_cast<int64_t>(rank) * slice);
  const int64_t e = std::min(numel, b + slice);
  return {b, std::max(b, e)};
}

nlohmann::json model_json(const model::GptConfig& c) {
  return {{"name", c.name},         {"n_layer", c.n_layer},       {"n_head", c.n_head},
          {"n_embd", c.n_embd},     {"seq_len", c.seq_len},       {"vocab_size", c.vocab_size},
          {"padded_vocab_size", c.padded_vocab_size}};
}

bool complete(const fs::path& tag_dir) { return fs::is_regular_file(tag_dir / k_manifest_name); }

std::string now_iso8601() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

}  // namespace

std::string shard_file_name(int rank) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "optim_rank_%05d.safetensors", rank);
  return buf;
}

std::string default_tag(int64_t step) { return "global_step" + std::to_string(step); }

namespace {

// Note [tag swap]: a tag is never modified in place. The new checkpoint is written into a staging
// directory beside it (`.<tag>.saving`), complete with its manifest, and only then put in place:
// renameat2(RENAME_EXCHANGE) swaps the two directories in one atomic step, so `<tag>` is at every
// instant either the old complete checkpoint or the new complete one, and `latest` (which may name
// that very tag, after a re-run into the same save_dir) never names something incomplete. Where the
// file system cannot exchange, two renames do it: old -> `.<tag>.replaced`, staging -> `<tag>`; a
// crash between them leaves `<tag>` missing, and recover_save_dir() renames the old one back. What
// is left of an interrupted save (a staging or replaced directory) is removed by recover_save_dir()
// at the start of the next job that uses the save_dir, with a log line naming it.
std::string staging_name(const std::string& tag) { return "." + tag + ".saving"; }
std::string replaced_name(const std::string& tag) { return "." + tag + ".replaced"; }

// Makes renames and creations in `dir` durable (AtomicFile does the same after its rename).
void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    log::warn("cannot open directory ", dir.string(), " to make a checkpoint rename durable: ", std::strerror(errno));
    return;
  }
  // EINVAL: the file system does not support fsync of a directory (its renames are durable anyway).
  if (::fsync(fd) != 0 && errno != EINVAL) log::warn("cannot fsync directory ", dir.string(), ": ", std::strerror(errno));
  ::close(fd);
}

// Test hook (tests/mp/worker_checkpoint_crash_test.cpp; not for users): DS_TEST_CHECKPOINT_KILL_AT
// names a point of the save at which rank 0 kills itself with SIGKILL, as a crash would.
constexpr const char* k_kill_points[] = {"after_shards", "after_manifest", "after_rename_old", "after_swap"};

const char* test_kill_point() {
  const char* v = std::getenv("DS_TEST_CHECKPOINT_KILL_AT");
  if (!v || !*v) return nullptr;
  for (const char* p : k_kill_points)
    if (std::strcmp(v, p) == 0) return p;
  std::string valid;
  for (const char* p : k_kill_points) valid += std::string(valid.empty() ? "" : ", ") + p;
  throw UsageError(std::string("DS_TEST_CHECKPOINT_KILL_AT=") + v + " is not a point of a checkpoint save; use one of " + valid +
                   " (a test hook: unset it for real runs)");
}

void maybe_die_at(const char* point, int rank) {
  const char* chosen = test_kill_point();
  if (rank != 0 || !chosen || std::strcmp(chosen, point) != 0) return;
  log::warn("DS_TEST_CHECKPOINT_KILL_AT=", point, ": rank 0 kills itself with SIGKILL (a test hook)");
  ::raise(SIGKILL);
}

// DS_TEST_CHECKPOINT_SWAP=rename (test-only) takes the two-rename path even where the file system
// can exchange, so its crash window is tested too.
bool exchange_allowed() {
  const char* v = std::getenv("DS_TEST_CHECKPOINT_SWAP");
  return !(v && std::strcmp(v, "rename") == 0);
}

void remove_tree(const fs::path& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) log::warn("cannot remove ", dir.string(), " (left by a checkpoint save): ", ec.message(), "; remove it by hand");
}

// Puts the complete staging directory in place of `tag_dir` (Note [tag swap]). Rank 0 only.
void swap_into_place(const fs::path& staging, const fs::path& tag_dir, const fs::path& replaced, bool exists, int rank) {
  const fs::path save_dir = tag_dir.parent_path();
  if (!exists) {
    if (::rename(staging.c_str(), tag_dir.c_str()) != 0)
      throw IoError("cannot rename " + staging.string() + " to " + tag_dir.string() + ": " + std::strerror(errno) +
                    "; check the permissions of --save_dir");
    sync_directory(save_dir);
    return;
  }
  bool exchanged = false;
  if (exchange_allowed()) {
    if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, tag_dir.c_str(), RENAME_EXCHANGE) == 0)
      exchanged = true;
    else if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
      throw IoError("cannot exchange " + staging.string() + " with " + tag_dir.string() + ": " + std::strerror(errno) +
                    "; check the permissions of --save_dir");
  }
  if (exchanged) {
    sync_directory(save_dir);
    maybe_die_at("after_swap", rank);
    remove_tree(staging);  // now the old checkpoint
    return;
  }
  if (::rename(tag_dir.c_str(), replaced.c_str()) != 0)
    throw IoError("cannot rename " + tag_dir.string() + " to " + replaced.string() + ": " + std::strerror(errno) +
                  "; check the permissions of --save_dir");
  sync_directory(save_dir);
  maybe_die_at("after_rename_old", rank);
  if (::rename(staging.c_str(), tag_dir.c_str()) != 0) {
    const int err = errno;
    ::rename(replaced.c_str(), tag_dir.c_str());  // put the old one back
    throw IoError("cannot rename " + staging.string() + " to " + tag_dir.string() + ": " + std::strerror(err) +
                  "; check the permissions of --save_dir");
  }
  sync_directory(save_dir);
  maybe_die_at("after_swap", rank);
  remove_tree(replaced);
}

}  // namespace

std::vector<std::string> recover_save_dir(const std::string& save_dir) {
  std::vector<std::string> done;
  std::error_code ec;
  if (!fs::is_directory(save_dir, ec)) return done;
  std::vector<fs::path> staging, replaced;
  for (const auto& entry : fs::directory_iterator(save_dir, ec)) {
    const std::string name = entry.path().filename().string();
    auto ends_with = [&](const std::string& suffix) {
      return name.size() > suffix.size() + 1 && name[0] == '.' && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (!entry.is_directory(ec)) continue;
    if (ends_with(".replaced")) replaced.push_back(entry.path());
    else if (ends_with(".saving")) staging.push_back(entry.path());
  }
  const fs::path dir(save_dir);
  // First the old checkpoints moved aside: put back where the save stopped before its new tag was
  // in place (`latest` may name that tag), remove where the new one is complete.
  for (const fs::path& p : replaced) {
    const std::string name = p.filename().string();
    const std::string tag = name.substr(1, name.size() - 1 - std::string(".replaced").size());
    const fs::path tag_dir = dir / tag;
    if (!fs::exists(tag_dir) && complete(p)) {
      if (::rename(p.c_str(), tag_dir.c_str()) != 0)
        throw IoError("cannot rename " + p.string() + " back to " + tag_dir.string() + " (a checkpoint save was interrupted): " +
                      std::strerror(errno) + "; rename it by hand");
      sync_directory(dir);
      done.push_back("restored checkpoint " + tag_dir.string() + " from " + p.string() +
                     ", left by a save that was interrupted before its new tag was in place");
    } else {
      remove_tree(p);
      done.push_back("removed " + p.string() + ", the checkpoint an interrupted save was replacing (" + tag_dir.string() +
                     " is complete)");
    }
  }
  for (const fs::path& p : staging) {
    remove_tree(p);
    done.push_back("removed " + p.string() + ", left by a checkpoint save that was interrupted");
  }
  return done;
}

bool save_checkpoint(Engine& engine, comm::Comm& comm, const std::string& save_dir, const std::string& tag,
                     const model::GptConfig& model, const nlohmann::json& trainer_state, const nlohmann::json& config) {
  test_kill_point();  // a misspelt test hook fails here, before anything is written
  const fs::path tag_dir = fs::path(save_dir) / tag;
  const fs::path staging = fs::path(save_dir) / staging_name(tag);
  const fs::path replaced_dir = fs::path(save_dir) / replaced_name(tag);
  std::error_code ec;
  bool replaced = false;  // an earlier complete checkpoint of this tag is being replaced
  // The new checkpoint goes into a fresh staging directory; the tag itself is untouched until the
  // new one is complete (Note [tag swap]).
  if (comm.rank() == 0) {
    for (const std::string& line : recover_save_dir(save_dir)) log::info(line);
    replaced = complete(tag_dir);
    fs::create_directories(save_dir, ec);
    if (ec && !fs::is_directory(save_dir))
      throw IoError("cannot create checkpoint directory " + save_dir + ": " + ec.message() +
                    "; check --save_dir and its permissions and free space");
    fs::remove_all(staging, ec);
    if (ec)
      throw IoError("cannot remove " + staging.string() + " (left by an interrupted save): " + ec.message() +
                    "; check the permissions of --save_dir");
    if (!fs::create_directory(staging, ec) || ec)
      throw IoError("cannot create checkpoint directory " + staging.string() + ": " + ec.message() +
                    "; check --save_dir and its permissions and free space");
  }
  comm.barrier();

  // 1. Every rank writes its owned slices (atomically: a crash leaves no half-written shard).
  const auto& layout = engine.layout();
  SafetensorsWriter writer;
  writer.set_metadata("format", "dslaunch");
  writer.set_metadata("rank", std::to_string(comm.rank()));
  writer.set_metadata("world_size", std::to_string(comm.size()));
  for (size_t u = 0; u < layout.units.size(); ++u) {
    const auto [b, e] = engine.owned_slice(static_cast<int>(u));
    if (b >= e) continue;
    for (auto which : k_state_tensors) {
      writer.add(layout.units[u].name + state_suffix(which), DType::f32, {e - b},
                 [&engine, u, b = b, e = e, which](SafetensorsSink& sink) {
                   // Stream in pieces so a large shard is never copied whole.
                   constexpr int64_t k_piece = 1 << 20;
                   std::vector<float> buf(static_cast<size_t>(std::min(k_piece, e - b)));
                   for (int64_t p = b; p < e; p += k_piece) {
                     const int64_t n = std::min(k_piece, e - p);
                     engine.read_state(static_cast<int>(u), p, n, which, buf.data());
                     sink.write(buf.data(), static_cast<size_t>(n) * 4);
                   }
                 });
    }
  }
  writer.write((staging / shard_file_name(comm.rank())).string());
  comm.barrier();
  maybe_die_at("after_shards", comm.rank());

  // 2. Rank 0 writes the manifest (the staging directory is complete from here on), puts it in
  // place of the tag, then moves `latest`.
  if (comm.rank() == 0) {
    const bool exists = fs::exists(tag_dir);
    nlohmann::json units = nlohmann::json::array();
    for (const auto& unit : layout.units) units.push_back({{"name", unit.name}, {"numel", unit.numel}});
    nlohmann::json params = nlohmann::json::array();
    for (const auto& p : layout.params) params.push_back({{"name", p.name}, {"shape", p.shape}, {"unit", p.unit}});
    nlohmann::json manifest = {
        {"format", "dslaunch.checkpoint"},
        {"version", k_checkpoint_format_version},
        {"tag", tag},
        {"saved_at", now_iso8601()},
        {"world_size", comm.size()},
        {"zero_stage", engine.options().stage},
        {"shard_align", k_shard_align},
        {"compute_dtype", dtype_name(engine.options().compute_dtype)},
        {"model", model_json(model)},
        {"units", units},
        {"params", params},
        {"engine", engine.state_json()},
        {"trainer", trainer_state},
        {"ds_config", config},
    };
    write_file_atomic((staging / k_manifest_name).string(), manifest.dump(1));
    maybe_die_at("after_manifest", 0);
    swap_into_place(staging, tag_dir, replaced_dir, exists, 0);
    write_file_atomic((fs::path(save_dir) / "latest").string(), tag);
  }
  comm.barrier();
  return replaced;
}

std::string resolve_checkpoint_dir(const std::string& path) {
  const fs::path p(path);
  if (!fs::exists(p)) throw CheckpointError("checkpoint path " + path + " does not exist; pass the --save_dir of a run or one of its tag directories");
  if (complete(p)) return p.string();
  const fs::path latest = p / "latest";
  if (fs::is_regular_file(latest)) {
    std::string tag = read_file(latest.string());
    while (!tag.empty() && (tag.back() == '\n' || tag.back() == ' ' || tag.back() == '\r')) tag.pop_back();
    const fs::path tag_dir = p / tag;
    if (!complete(tag_dir))
      throw CheckpointError(latest.string() + " names tag '" + tag + "', but " + (tag_dir / k_manifest_name).string() +
                            " is missing: that checkpoint is incomplete or was deleted; pass an older tag directory under " + path);
    return tag_dir.string();
  }
  if (fs::is_directory(p) && fs::exists(p / shard_file_name(0)))
    throw CheckpointError(path + " has shard files but no " + k_manifest_name +
                          ": its save did not finish (the job stopped during it); resume from the previous checkpoint");
  throw CheckpointError(path + " is neither a checkpoint tag directory (no " + std::string(k_manifest_name) +
                        ") nor a save directory (no 'latest' file)");
}

// ---- reading ---------------------------------------------------------------------------------

struct CheckpointReader::Impl {
  mutable std::vector<std::unique_ptr<SafetensorsReader>> shards;
};

CheckpointReader::CheckpointReader(const std::string& tag_dir) : m_dir(tag_dir), m_impl(std::make_unique<Impl>()) {
  const std::string manifest_path = (fs::path(tag_dir) / k_manifest_name).string();
  try {
    m_manifest = nlohmann::json::parse(read_file(manifest_path));
    if (m_manifest.at("format") != "dslaunch.checkpoint")
      throw CheckpointError(manifest_path + " is not a dslaunch checkpoint manifest");
    const int version = m_manifest.at("version").get<int>();
    if (version != k_checkpoint_format_version)
      throw CheckpointError(manifest_path + " has format version " + std::to_string(version) + "; this dsworker reads version " +
                            std::to_string(k_checkpoint_format_version));
    m_world_size = m_manifest.at("world_size").get<int>();
    m_align = m_manifest.at("shard_align").get<int64_t>();
    for (const auto& u : m_manifest.at("units")) {
      m_unit_names.push_back(u.at("name").get<std::string>());
      m_unit_numel.push_back(u.at("numel").get<int64_t>());
    }
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(manifest_path + " is malformed (" + e.what() + ")");
  } catch (const IoError& e) {
    throw CheckpointError(e.what());
  }
  m_impl->shards.resize(static_cast<size_t>(m_world_size));
}

CheckpointReader::~CheckpointReader() = default;

model::GptConfig CheckpointReader::model_config() const {
  const auto& m = m_manifest.at("model");
  model::GptConfig c;
  c.name = m.at("name").get<std::string>();
  c.n_layer = m.at("n_layer").get<int>();
  c.n_head = m.at("n_head").get<int>();
  c.n_embd = m.at("n_embd").get<int>();
  c.seq_len = m.at("seq_len").get<int>();
  c.vocab_size = m.at("vocab_size").get<int>();
  c.padded_vocab_size = m.at("padded_vocab_size").get<int>();
  return c;
}

void CheckpointReader::check_layout(const model::ModelLayout& layout) const {
  if (layout.units.size() != m_unit_names.size())
    throw CheckpointError("checkpoint " + m_dir + " has " + std::to_string(m_unit_names.size()) + " units, this model " +
                          std::to_string(layout.units.size()) + ": resume with the same --model as the saved run (" +
                          m_manifest.at("model").dump() + ")");
  for (size_t u = 0; u < layout.units.size(); ++u)
    if (layout.units[u].name != m_unit_names[u] || layout.units[u].numel != m_unit_numel[u])
      throw CheckpointError("checkpoint " + m_dir + ": unit " + std::to_string(u) + " is '" + m_unit_names[u] + "' with " +
                            std::to_string(m_unit_numel[u]) + " elements, this model has '" + layout.units[u].name + "' with " +
                            std::to_string(layout.units[u].numel) + ": resume with the same --model as the saved run (" +
                            m_manifest.at("model").dump() + ")");
}

void CheckpointReader::read(int unit, int64_t begin, int64_t count, Engine::StateTensor which, float* out) const {
  DS_CHECK(unit >= 0 && static_cast<size_t>(unit) < m_unit_numel.size());
  const int64_t numel = m_unit_numel[static_cast<size_t>(unit)];
  DS_CHECK(begin >= 0 && begin + count <= numel);
  const std::string name = m_unit_names[static_cast<size_t>(unit)] + state_suffix(which);
  for (int r = 0; r < m_world_size && count > 0; ++r) {
    const auto [ob, oe] = saved_owned_range(numel, m_world_size, m_align, r);
    const int64_t b = std::max(begin, ob), e = std::min(begin + count, oe);
    if (b >= e) continue;
    auto& shard = m_impl->shards[static_cast<size_t>(r)];
    if (!shard) {
      try {
        shard = std::make_unique<SafetensorsReader>((fs::path(m_dir) / shard_file_name(r)).string());
      } catch (const IoError& err) {
        throw CheckpointError(std::string("checkpoint ") + m_dir + " is damaged: " + err.what());
      }
    }
    const auto& info = shard->info(name);
    if (info.numel != oe - ob || info.dtype != "F32")
      throw CheckpointError("checkpoint " + m_dir + ": tensor " + name + " in " + shard_file_name(r) + " holds " +
                            std::to_string(info.numel) + " " + info.dtype + " values, expected " + std::to_string(oe - ob) + " F32");
    const auto bytes = shard->bytes(name);
    std::memcpy(out + (b - begin), bytes.data() + (b - ob) * 4, static_cast<size_t>(e - b) * 4);
  }
}

nlohmann::json load_checkpoint(Engine& engine, const std::string& tag_dir) {
  CheckpointReader reader(tag_dir);
  reader.check_layout(engine.layout());
  engine.load_optimizer_space([&](int unit, int64_t begin, int64_t count, Engine::StateTensor which, float* out) {
    reader.read(unit, begin, count, which, out);
  });
  engine.load_state_json(reader.manifest().at("engine"));
  return reader.manifest();
}

// ---- export ------------------------------------------------------------------------------------

void export_hf(const std::string& tag_dir, const std::string& out_dir, DType dtype) {
  CheckpointReader reader(tag_dir);
  const model::GptConfig config = reader.model_config();
  const model::ModelLayout layout = model::gpt_layout(config);
  reader.check_layout(layout);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec && !fs::is_directory(out_dir)) throw IoError("cannot create " + out_dir + ": " + ec.message());

  SafetensorsWriter writer;  // metadata {"format": "pt"}, what transformers expects
  for (size_t pi = 0; pi < layout.params.size(); ++pi) {
    const auto& p = layout.params[pi];
    const int64_t rows = p.hf_rows > 0 ? p.hf_rows : p.shape.at(0);
    const int64_t cols = p.shape.size() == 2 ? p.shape[1] : 1;
    std::vector<int64_t> shape = p.shape;
    shape[0] = rows;
    if (p.hf_layout == model::HfLayout::transposed) std::swap(shape[0], shape[1]);
    const int64_t unit_begin = layout.unit_offset(static_cast<model::ParamId>(pi));
    writer.add(p.name, dtype, shape, [&reader, &p, unit_begin, rows, cols, dtype](SafetensorsSink& sink) {
      std::vector<float> values(static_cast<size_t>(rows * cols));
      reader.read(p.unit, unit_begin, rows * cols, Engine::StateTensor::master, values.data());
      if (p.hf_layout == model::HfLayout::transposed) {
        std::vector<float> t(values.size());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) t[static_cast<size_t>(c * rows + r)] = values[static_cast<size_t>(r * cols + c)];
        values.swap(t);
      }
      if (dtype == DType::f32) {
        sink.write(values.data(), values.size() * 4);
        return;
      }
      std::vector<uint16_t> half(values.size());
      for (size_t i = 0; i < values.size(); ++i) half[i] = dtype == DType::bf16 ? to_bf16(values[i]).bits : to_f16(values[i]).bits;
      sink.write(half.data(), half.size() * 2);
    });
  }
  writer.write((fs::path(out_dir) / "model.safetensors").string());

  const nlohmann::json hf_config = {
      {"architectures", {"GPT2LMHeadModel"}},
      {"model_type", "gpt2"},
      {"vocab_size", config.vocab_size},
      {"n_positions", config.seq_len},
      {"n_ctx", config.seq_len},
      {"n_embd", config.n_embd},
      {"n_layer", config.n_layer},
      {"n_head", config.n_head},
      {"n_inner", nullptr},
      {"activation_function", "gelu_new"},
      {"layer_norm_epsilon", 1e-5},
      {"resid_pdrop", 0.0},
      {"embd_pdrop", 0.0},
      {"attn_pdrop", 0.0},
      {"initializer_range", 0.02},
      {"tie_word_embeddings", true},
      {"bos_token_id", config.vocab_size - 1},
      {"eos_token_id", config.vocab_size - 1},
      {"torch_dtype", dtype == DType::f32 ? "float32" : dtype == DType::bf16 ? "bfloat16" : "float16"},
  };
  write_file_atomic((fs::path(out_dir) / "config.json").string(), hf_config.dump(2) + "\n");
}

// ---- checkpoint.tag_validation ---------------------------------------------------------------

std::optional<std::string> checkpoint_tag_mismatch(const std::vector<std::string>& tags, config::TagValidation mode) {
  if (tags.empty() || std::all_of(tags.begin(), tags.end(), [&](const std::string& t) { return t == tags.front(); }))
    return std::nullopt;
  std::string list;
  for (size_t r = 0; r < tags.size(); ++r) list += (r ? ", rank " : "rank ") + std::to_string(r) + " '" + tags[r] + "'";
  return "the checkpoint tag is not the same on every rank (" + list + "); every rank must save under the same tag" +
         (mode == config::TagValidation::fail ? " (checkpoint.tag_validation is \"Fail\": nothing was saved; \"Warn\" would save and log this)"
                                               : " (checkpoint.tag_validation is \"Warn\"; \"Fail\" stops the save instead)");
}

std::optional<std::string> validate_checkpoint_tag(comm::Comm& comm, const std::string& tag, config::TagValidation mode) {
  if (mode == config::TagValidation::ignore) return std::nullopt;
  // Lengths, then the tags padded to the longest, travel as fp32 words: all_gather copies them bit
  // for bit.
  const int world = comm.size();
  float length_word = 0.0f;
  const uint32_t length = static_cast<uint32_t>(tag.size());
  std::memcpy(&length_word, &length, 4);
  std::vector<float> length_words(static_cast<size_t>(world));
  comm::all_gather(comm, TensorRef{&length_word, DType::f32, 1}, TensorRef{length_words.data(), DType::f32, world});
  std::vector<uint32_t> lengths(static_cast<size_t>(world));
  std::memcpy(lengths.data(), length_words.data(), lengths.size() * 4);
  const int64_t words = (static_cast<int64_t>(*std::max_element(lengths.begin(), lengths.end())) + 3) / 4;
  std::vector<std::string> tags(static_cast<size_t>(world));
  if (words > 0) {
    std::vector<float> mine(static_cast<size_t>(words), 0.0f), all(static_cast<size_t>(words * world));
    std::memcpy(mine.data(), tag.data(), tag.size());
    comm::all_gather(comm, TensorRef{mine.data(), DType::f32, words}, TensorRef{all.data(), DType::f32, words * world});
    for (int r = 0; r < world; ++r)
      tags[static_cast<size_t>(r)].assign(reinterpret_cast<const char*>(all.data() + r * words), lengths[static_cast<size_t>(r)]);
  }
  auto mismatch = checkpoint_tag_mismatch(tags, mode);
  if (mismatch && mode == config::TagValidation::fail) throw CheckpointError(*mismatch);
  if (mismatch && comm.rank() == 0) log::warn(*mismatch);
  return mismatch;
}

}  // namespace ds::zero
