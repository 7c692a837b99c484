// A training (or validation) set: an ordered list of token shards, read as windows of T+1 tokens
// that never cross a shard boundary (a window mixing the end of one file with the start of the
// next would teach the model a transition that is not in the data).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/data_shard.hpp"

namespace ds::model {

class TokenDataset {
 public:
  // `spec` is one of
  //   a file:       "data/tiny_shakespeare_train.bin", "notes.txt"
  //   a directory:  every "*.bin" in it, else every "*.txt", in name order
  //   a glob:       "data/fineweb_train_*.bin", in name order (as llm.c sorts its shards)
  // Formats follow TokenShard::open (".bin" = llm.c token file, else text bytes). Throws IoError
  // naming the spec when nothing matches, or the file when one is invalid.
  static TokenDataset open(const std::string& spec);

  // A dataset of given shards (in-memory corpora, tests); `description` names it in messages.
  TokenDataset(std::vector<TokenShard> shards, std::string description);

  const std::vector<TokenShard>& shards() const { return m_shards; }
  const std::string& description() const { return m_description; }
  int64_t total_tokens() const { return m_total_tokens; }
  // One past the largest token any shard's format can hold (256 when all shards are text).
  int64_t token_limit() const;

  // Windows of seq_len+1 tokens: shard s holds (size_s - 1) / seq_len non-overlapping windows
  // (consecutive windows share one token: the last target of one is the first input of the next,
  // so every token is predicted once per epoch). Window w of the dataset is the w-th in file order.
  int64_t window_count(int64_t seq_len) const;

 private:
  std::vector<TokenShard> m_shards;
  std::string m_description;
  int64_t m_total_tokens = 0;
};

// The files a spec names, in the order TokenDataset::open reads them. Throws IoError when none.
std::vector<std::string> resolve_data_files(const std::string& spec);

}  // namespace ds::model
