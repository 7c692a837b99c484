// Checkpoints (DESIGN.md §2): one directory per tag, one shard file per rank, a manifest, and a
// `latest` pointer written last by atomic rename, so a crash mid-save never touches the last good
// checkpoint.
//
//   <save_dir>/latest                          the tag of the newest complete checkpoint (text)
//   <save_dir>/<tag>/manifest.json             written by rank 0 once every shard is on disk
//   <save_dir>/<tag>/optim_rank_<r>.safetensors   rank r's owned slices (Partition::owned_range)
//                                              of each unit: "<unit>.master", "<unit>.exp_avg",
//                                              "<unit>.exp_avg_sq" (fp32)
//
// A tag directory without manifest.json is incomplete (a crash during its save) and is never
// loaded. The manifest records the world size and alignment of the save, so any rank of any world
// size and any stage recomputes who owned what (Note [unit sharding]) and reads just the slices it
// needs: resuming on another world size or stage re-partitions with no conversion step (DeepSpeed
// needs ds_to_universal.py for that, research/zero-anchors.md §4.3).
//
// Resume restores what makes the continued run identical to an uninterrupted one: fp32 master
// weights, Adam moments and step counts, the loss scaler (engine state), plus whatever the trainer
// puts in `trainer_state` (scheduler, data position, step counter).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/gpt_config.hpp"
#include "model/params.hpp"
#include "comm/comm.hpp"
#include "base/dtype.hpp"
#include "config/config.hpp"
#include "zero/engine.hpp"

namespace ds::zero {

inline constexpr const char* k_manifest_name = "manifest.json";
inline constexpr int k_checkpoint_format_version = 1;

std::string shard_file_name(int rank);     // "optim_rank_00003.safetensors"
std::string default_tag(int64_t step);     // "global_step<step>" (DeepSpeed's default)

// Saves a checkpoint under save_dir/tag. Collective: every rank calls it with the same arguments.
// `trainer_state` and `config` go into the manifest (rank 0's copy is written). The checkpoint is
// written into a staging directory beside the tag and put in place only once complete (Note [tag
// swap], checkpoint.cpp): a complete checkpoint already under save_dir/tag (an earlier job run into
// the same save_dir, which `latest` may name) is replaced, as DeepSpeed does, but stays intact and
// loadable until the new one is complete, whatever point a crash hits. Returns true on rank 0 when
// it replaced such a checkpoint (for the log). Throws IoError (naming the path) when anything cannot
// be written; the previous checkpoint and `latest` stay intact.
bool save_checkpoint(Engine& engine, comm::Comm& comm, const std::string& save_dir, const std::string& tag,
                     const model::GptConfig& model, const nlohmann::json& trainer_state, const nlohmann::json& config);

// Repairs what an interrupted save_checkpoint left in save_dir (Note [tag swap]): an old checkpoint
// moved aside while its tag was missing is renamed back; staging directories and old checkpoints
// whose tag is complete are removed. Returns one line per thing done, for the log (empty when
// nothing was left). Call on one rank, before any rank reads or writes save_dir. Throws IoError
// when an old checkpoint cannot be put back.
std::vector<std::string> recover_save_dir(const std::string& save_dir);

// The tag directory to resume from: `path` may be a save_dir (its `latest` is followed) or a tag
// directory. Throws CheckpointError naming the path and what is missing (no latest, latest naming
// a missing or incomplete tag, no manifest).
std::string resolve_checkpoint_dir(const std::string& path);

// Reads a complete checkpoint: the manifest and, lazily, every rank's shard file.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& tag_dir);  // throws CheckpointError
  ~CheckpointReader();
  const nlohmann::json& manifest() const { return m_manifest; }
  int world_size() const { return m_world_size; }
  const std::string& dir() const { return m_dir; }
  model::GptConfig model_config() const;
  // Throws CheckpointError naming the first unit or param whose name or size differs from `layout`.
  void check_layout(const model::ModelLayout& layout) const;
  // Fills out[0, count) with elements [begin, begin + count) of unit u's state tensor, reading the
  // slices of whichever saved ranks owned them.
  void read(int unit, int64_t begin, int64_t count, Engine::StateTensor which, float* out) const;

 private:
  struct Impl;
  std::string m_dir;
  nlohmann::json m_manifest;
  int m_world_size = 1;
  int64_t m_align = 16;
  std::vector<std::string> m_unit_names;
  std::vector<int64_t> m_unit_numel;
  std::unique_ptr<Impl> m_impl;
};

// Loads `tag_dir` into the engine (any saved stage and world size). Collective. Returns the
// manifest (its "trainer" member holds what save_checkpoint got as trainer_state).
nlohmann::json load_checkpoint(Engine& engine, const std::string& tag_dir);

// Writes a Hugging Face GPT-2 checkpoint of the fp32 master weights to out_dir: model.safetensors
// (transformers' tensor names, Conv1D weights transposed, the padded vocabulary trimmed) and
// config.json (GPT2Config), so GPT2LMHeadModel.from_pretrained(out_dir) loads it. No engine needed.
// `dtype` is the tensors' dtype in the file.
void export_hf(const std::string& tag_dir, const std::string& out_dir, DType dtype);

// checkpoint.tag_validation (DeepSpeed's _checkpoint_tag_validation): before a save the ranks
// compare the tag each is about to save under, since ranks writing different tags leave two
// incomplete checkpoints. Collective (two all-gathers: the tags' lengths, then the tags), except
// for Ignore, which issues nothing (every rank reads the same config, so all skip alike).
// Returns the mismatch message, or none when every rank has the same tag. Warn logs the message
// on rank 0; Fail throws it as a CheckpointError on every rank (all ranks see the same tags, so
// they agree and none is left waiting).
std::optional<std::string> validate_checkpoint_tag(comm::Comm& comm, const std::string& tag, config::TagValidation mode);
// The message for `tags` (tags[r]: rank r's tag) when they differ, or none when all are equal.
std::optional<std::string> checkpoint_tag_mismatch(const std::vector<std::string>& tags, config::TagValidation mode);

}  // namespace ds::zero
