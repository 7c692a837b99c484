#include "model/data_shard.hpp"

#include <bit>
#include <cstring>

#include "base/atomic_file.hpp"
#include "base/check.hpp"
#include "base/error.hpp"
#include "base/mapped_file.hpp"

namespace ds::model {

static_assert(std::endian::native == std::endian::little, "token files are little-endian; add byte swaps for this host");

const char* token_format_name(TokenFormat format) {
  switch (format) {
    case TokenFormat::automatic: return "automatic";
    case TokenFormat::llmc_bin: return "llm.c token file";
    case TokenFormat::text_bytes: return "text bytes";
  }
  return "?";
}

namespace {

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int32_t header_int(std::span<const std::byte> file, size_t index) {
  int32_t value;
  std::memcpy(&value, file.data() + index * sizeof(int32_t), sizeof value);
  return value;
}

}  // namespace

int64_t parse_llmc_header(std::span<const std::byte> file, const std::string& name) {
  const std::string what = "data file '" + name + "'";
  if (file.size() < k_llmc_header_bytes)
    throw IoError(what + " is " + std::to_string(file.size()) + " bytes, shorter than the " +
                  std::to_string(k_llmc_header_bytes) +
                  "-byte header of an llm.c token file (a text file to read as bytes must not be named *.bin)");
  const int32_t magic = header_int(file, 0);
  if (magic == k_llmc_llama3_magic)
    throw IoError(what + " is an llm.c LLaMA-3 token file (magic " + std::to_string(k_llmc_llama3_magic) +
                  ", uint32 tokens); only GPT-2 token files (magic " + std::to_string(k_llmc_magic) +
                  ", uint16 tokens) are supported");
  if (magic != k_llmc_magic)
    throw IoError(what + " has magic number " + std::to_string(magic) + " where an llm.c token file has " +
                  std::to_string(k_llmc_magic) + ": it is not a token file, or another tool wrote it");
  const int32_t version = header_int(file, 1);
  if (version != k_llmc_version)
    throw IoError(what + " has format version " + std::to_string(version) + "; only version " +
                  std::to_string(k_llmc_version) + " of the llm.c token format (uint16 tokens) is supported");
  const int32_t count = header_int(file, 2);
  if (count < 0) throw IoError(what + " declares " + std::to_string(count) + " tokens in its header");
  const uint64_t expected = static_cast<uint64_t>(count) * sizeof(uint16_t);
  const uint64_t actual = file.size() - k_llmc_header_bytes;
  if (actual < expected)
    throw IoError(what + " declares " + std::to_string(count) + " tokens (" + std::to_string(expected) +
                  " bytes after its " + std::to_string(k_llmc_header_bytes) + "-byte header) but holds only " +
                  std::to_string(actual) + ": the file is truncated (an interrupted write or download?)");
  if (actual > expected)
    throw IoError(what + " declares " + std::to_string(count) + " tokens (" + std::to_string(expected) +
                  " bytes after its " + std::to_string(k_llmc_header_bytes) + "-byte header) but holds " +
                  std::to_string(actual) + ": " + std::to_string(actual - expected) +
                  " unexpected bytes follow the last token");
  return count;
}

TokenShard TokenShard::open(const std::string& path, TokenFormat format) {
  if (format == TokenFormat::automatic) format = ends_with(path, ".bin") ? TokenFormat::llmc_bin : TokenFormat::text_bytes;
  auto mapped = std::make_shared<MappedFile>(path);
  TokenShard shard;
  shard.m_name = path;
  shard.m_format = format;
  if (format == TokenFormat::llmc_bin) {
    shard.m_size = parse_llmc_header(mapped->bytes(), path);
    shard.m_tokens = mapped->data() + k_llmc_header_bytes;
    shard.m_width = 2;
  } else {
    shard.m_size = static_cast<int64_t>(mapped->size());
    shard.m_tokens = mapped->data();
    shard.m_width = 1;
  }
  shard.m_owner = std::move(mapped);
  return shard;
}

TokenShard TokenShard::from_tokens(std::string name, std::vector<uint16_t> tokens) {
  auto owned = std::make_shared<std::vector<uint16_t>>(std::move(tokens));
  TokenShard shard;
  shard.m_name = std::move(name);
  shard.m_format = TokenFormat::llmc_bin;
  shard.m_tokens = reinterpret_cast<const std::byte*>(owned->data());
  shard.m_size = static_cast<int64_t>(owned->size());
  shard.m_width = 2;
  shard.m_owner = std::move(owned);
  return shard;
}

TokenShard TokenShard::from_text(std::string name, std::string text) {
  auto owned = std::make_shared<std::string>(std::move(text));
  TokenShard shard;
  shard.m_name = std::move(name);
  shard.m_format = TokenFormat::text_bytes;
  shard.m_tokens = reinterpret_cast<const std::byte*>(owned->data());
  shard.m_size = static_cast<int64_t>(owned->size());
  shard.m_width = 1;
  shard.m_owner = std::move(owned);
  return shard;
}

int32_t TokenShard::operator[](int64_t i) const {
  DS_CHECK(i >= 0 && i < m_size, "token ", i, " of shard '", m_name, "' with ", m_size, " tokens");
  if (m_width == 1) return static_cast<int32_t>(std::to_integer<uint8_t>(m_tokens[i]));
  uint16_t token;
  std::memcpy(&token, m_tokens + 2 * i, sizeof token);  // the mapping is page-aligned, but stay alignment-free
  return token;
}

void TokenShard::read(int64_t start, int64_t count, int32_t* out) const {
  DS_CHECK(start >= 0 && count >= 0 && start + count <= m_size, "tokens [", start, ", +", count, ") of shard '", m_name,
           "' with ", m_size, " tokens");
  if (m_width == 1) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(m_tokens) + start;
    for (int64_t i = 0; i < count; ++i) out[i] = bytes[i];
  } else {
    const std::byte* src = m_tokens + 2 * start;
    for (int64_t i = 0; i < count; ++i) {
      uint16_t token;
      std::memcpy(&token, src + 2 * i, sizeof token);
      out[i] = token;
    }
  }
}

void write_token_shard(const std::string& path, std::span<const uint16_t> tokens) {
  if (tokens.size() > static_cast<size_t>(INT32_MAX))
    throw UsageError("cannot write " + std::to_string(tokens.size()) + " tokens to '" + path +
                     "': an llm.c token file holds at most 2147483647; split them into several shards");
  int32_t header[k_llmc_header_ints] = {};
  header[0] = k_llmc_magic;
  header[1] = k_llmc_version;
  header[2] = static_cast<int32_t>(tokens.size());
  AtomicFile file(path);
  file.write(header, sizeof header);
  file.write(tokens.data(), tokens.size_bytes());
  file.commit();
}

void write_token_shard(const std::string& path, std::span<const int32_t> tokens) {
  std::vector<uint16_t> narrow(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] > 65535)
      throw UsageError("cannot write token " + std::to_string(tokens[i]) + " (at index " + std::to_string(i) + ") to '" +
                       path + "': an llm.c token file holds ids 0..65535");
    narrow[i] = static_cast<uint16_t>(tokens[i]);
  }
  write_token_shard(path, std::span<const uint16_t>(narrow));
}

}  // namespace ds::model
