#include "model/data_set.hpp"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>

#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::model {
namespace {

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::vector<std::string> glob_files(const std::string& pattern) {
  glob_t result{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &result);  // glob sorts its matches
  std::vector<std::string> files;
  if (rc == 0) {
    for (size_t i = 0; i < result.gl_pathc; ++i)
      if (is_regular_file(result.gl_pathv[i])) files.emplace_back(result.gl_pathv[i]);
  }
  ::globfree(&result);
  if (rc != 0 && rc != GLOB_NOMATCH) throw IoError("cannot list the files matching '" + pattern + "' (glob error " + std::to_string(rc) + ")");
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

std::vector<std::string> resolve_data_files(const std::string& spec) {
  if (spec.empty()) throw IoError("no data given: name a token file, a directory of them, or a glob such as 'data/*_train.bin'");
  if (is_directory(spec)) {
    const std::string dir = spec.back() == '/' ? spec : spec + "/";
    std::vector<std::string> files = glob_files(dir + "*.bin");
    if (files.empty()) files = glob_files(dir + "*.txt");
    if (files.empty()) throw IoError("data directory '" + spec + "' holds no *.bin token files and no *.txt files");
    return files;
  }
  if (spec.find_first_of("*?[") != std::string::npos) {
    std::vector<std::string> files = glob_files(spec);
    if (files.empty()) throw IoError("no data file matches '" + spec + "'");
    return files;
  }
  return {spec};  // a single file; TokenShard::open reports a missing one
}

TokenDataset TokenDataset::open(const std::string& spec) {
  std::vector<TokenShard> shards;
  for (const std::string& file : resolve_data_files(spec)) shards.push_back(TokenShard::open(file));
  return TokenDataset(std::move(shards), spec);
}

TokenDataset::TokenDataset(std::vector<TokenShard> shards, std::string description)
    : m_shards(std::move(shards)), m_description(std::move(description)) {
  for (const TokenShard& shard : m_shards) m_total_tokens += shard.size();
}

int64_t TokenDataset::token_limit() const {
  int64_t limit = 0;
  for (const TokenShard& shard : m_shards) limit = std::max(limit, shard.token_limit());
  return limit;
}

int64_t TokenDataset::window_count(int64_t seq_len) const {
  DS_CHECK(seq_len > 0, "seq_len ", seq_len);
  int64_t windows = 0;
  for (const TokenShard& shard : m_shards)
    if (shard.size() > seq_len) windows += (shard.size() - 1) / seq_len;
  return windows;
}

}  // namespace ds::model
