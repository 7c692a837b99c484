// One file (or in-memory buffer) of training tokens.
//
// Formats:
//   llm.c token file (".bin"): a header of 256 little-endian int32 — [0] magic 20240520,
//     [1] version 1, [2] token count N, the rest zero — then N uint16 tokens (GPT-2 ids). This is
//     what llm.c's dev/data scripts write (fineweb, tinyshakespeare, ...), so their shards load as is.
//   text (any other file): every byte is a token (vocabulary 256), no tokenizer needed.
//
// Reading maps the file (MappedFile): a multi-GB shard costs no memory until windows are read.
// All methods are const and thread-safe after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ds::model {

constexpr int32_t k_llmc_magic = 20240520;          // llm.c GPT-2 token files
constexpr int32_t k_llmc_version = 1;
constexpr int32_t k_llmc_llama3_magic = 20240801;   // llm.c's uint32 LLaMA-3 files: recognised, refused
constexpr size_t k_llmc_header_ints = 256;
constexpr size_t k_llmc_header_bytes = k_llmc_header_ints * sizeof(int32_t);

enum class TokenFormat : uint8_t {
  automatic,   // by file name: "*.bin" is an llm.c token file, anything else text bytes
  llmc_bin,    // llm.c header + uint16 tokens
  text_bytes,  // one token per byte
};
const char* token_format_name(TokenFormat format);

class TokenShard {
 public:
  // Opens and validates a file. Throws IoError naming the file and what is wrong (missing file,
  // bad magic or version, token count that disagrees with the file size).
  static TokenShard open(const std::string& path, TokenFormat format = TokenFormat::automatic);
  // In-memory shards (the default corpus, tests). `name` is what messages call it.
  static TokenShard from_tokens(std::string name, std::vector<uint16_t> tokens);
  static TokenShard from_text(std::string name, std::string text);

  const std::string& name() const { return m_name; }
  TokenFormat format() const { return m_format; }
  int64_t size() const { return m_size; }           // tokens
  // One past the largest token id the format can hold: 256 for text, 65536 for llm.c files.
  int64_t token_limit() const { return m_width == 1 ? 256 : 65536; }

  int32_t operator[](int64_t i) const;
  // out[0..count) = tokens [start, start+count); the range must lie inside the shard (DS_CHECK).
  void read(int64_t start, int64_t count, int32_t* out) const;

 private:
  TokenShard() = default;

  std::string m_name;
  TokenFormat m_format = TokenFormat::text_bytes;
  std::shared_ptr<const void> m_owner;  // keeps the mapping or the in-memory buffer alive
  const std::byte* m_tokens = nullptr;  // first token (past any header)
  int64_t m_size = 0;
  int m_width = 1;                      // bytes per token: 1 (text) or 2 (uint16)
};

// Validates an llm.c token file image and returns its token count; `name` appears in messages.
// Throws IoError naming the file and what is wrong. Exposed for tests and tools.
int64_t parse_llmc_header(std::span<const std::byte> file, const std::string& name);

// Writes tokens as an llm.c token file, atomically (AtomicFile). Throws IoError.
void write_token_shard(const std::string& path, std::span<const uint16_t> tokens);
// The same from int32 ids; throws UsageError naming the first id outside [0, 65535].
void write_token_shard(const std::string& path, std::span<const int32_t> tokens);

}  // namespace ds::model
