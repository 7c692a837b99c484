#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "model/data_set.hpp"
#include "model/data_shard.hpp"
#include "base/atomic_file.hpp"
#include "base/error.hpp"
#include "support/process.hpp"

using namespace ds;
using namespace ds::model;

namespace {

// An llm.c token file image with the given header fields and `payload_bytes` bytes after it.
std::string bin_image(int32_t magic, int32_t version, int32_t count, size_t payload_bytes) {
  std::string image(k_llmc_header_bytes + payload_bytes, '\0');
  std::memcpy(image.data(), &magic, 4);
  std::memcpy(image.data() + 4, &version, 4);
  std::memcpy(image.data() + 8, &count, 4);
  for (size_t i = 0; i < payload_bytes; ++i) image[k_llmc_header_bytes + i] = static_cast<char>(i);
  return image;
}

std::string open_error(const std::string& path) {
  try {
    TokenShard::open(path);
  } catch (const IoError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("a token file round-trips through write_token_shard and TokenShard::open") {
  test::TempDir dir;
  std::vector<uint16_t> tokens;
  for (int i = 0; i < 5000; ++i) tokens.push_back(static_cast<uint16_t>((i * 7919) % 65536));
  write_token_shard(dir.file("train_000.bin"), std::span<const uint16_t>(tokens));

  // The layout is llm.c's: 256 int32 header (magic, version, count), then uint16 tokens.
  const std::string image = read_file(dir.file("train_000.bin"));
  REQUIRE(image.size() == 1024 + 2 * tokens.size());
  int32_t header[3];
  std::memcpy(header, image.data(), sizeof header);
  CHECK(header[0] == 20240520);
  CHECK(header[1] == 1);
  CHECK(header[2] == 5000);
  CHECK(image.substr(12, 1024 - 12) == std::string(1024 - 12, '\0'));

  const TokenShard shard = TokenShard::open(dir.file("train_000.bin"));
  CHECK(shard.format() == TokenFormat::llmc_bin);
  CHECK(shard.size() == 5000);
  CHECK(shard.token_limit() == 65536);
  std::vector<int32_t> read(5000);
  shard.read(0, 5000, read.data());
  for (int i = 0; i < 5000; ++i) REQUIRE(read[i] == tokens[i]);
  CHECK(shard[4999] == tokens[4999]);
  shard.read(1234, 3, read.data());
  CHECK(read[0] == tokens[1234]);
  CHECK(read[2] == tokens[1236]);
}

TEST_CASE("an empty token file holds zero tokens") {
  test::TempDir dir;
  write_token_shard(dir.file("empty.bin"), std::span<const uint16_t>());
  CHECK(TokenShard::open(dir.file("empty.bin")).size() == 0);
}

TEST_CASE("token ids outside uint16 cannot be written to a token file") {
  test::TempDir dir;
  const std::vector<int32_t> ok{0, 65535, 50256};
  write_token_shard(dir.file("ok.bin"), std::span<const int32_t>(ok));
  CHECK(TokenShard::open(dir.file("ok.bin"))[1] == 65535);
  const std::vector<int32_t> bad{1, 2, 70000};
  CHECK_THROWS_WITH(write_token_shard(dir.file("bad.bin"), std::span<const int32_t>(bad)),
                    "cannot write token 70000 (at index 2) to '" + dir.file("bad.bin") + "': an llm.c token file holds ids 0..65535");
  CHECK_FALSE(std::filesystem::exists(dir.file("bad.bin")));
}

TEST_CASE("every malformed token file header is an IoError naming the file and the problem") {
  test::TempDir dir;
  const std::string f = dir.file("x.bin");
  const std::string name = "data file '" + f + "'";

  dir.write("x.bin", std::string(100, 'a'));
  CHECK(open_error(f) == name + " is 100 bytes, shorter than the 1024-byte header of an llm.c token file "
                               "(a text file to read as bytes must not be named *.bin)");

  dir.write("x.bin", bin_image(12345, 1, 0, 0));
  CHECK(open_error(f) == name + " has magic number 12345 where an llm.c token file has 20240520: it is not a token file, "
                               "or another tool wrote it");

  dir.write("x.bin", bin_image(20240801, 7, 0, 0));
  CHECK(open_error(f) == name + " is an llm.c LLaMA-3 token file (magic 20240801, uint32 tokens); only GPT-2 token files "
                               "(magic 20240520, uint16 tokens) are supported");

  dir.write("x.bin", bin_image(20240520, 2, 0, 0));
  CHECK(open_error(f) == name + " has format version 2; only version 1 of the llm.c token format (uint16 tokens) is supported");

  dir.write("x.bin", bin_image(20240520, 1, -5, 0));
  CHECK(open_error(f) == name + " declares -5 tokens in its header");

  dir.write("x.bin", bin_image(20240520, 1, 1000, 1500));
  CHECK(open_error(f) == name + " declares 1000 tokens (2000 bytes after its 1024-byte header) but holds only 1500: "
                               "the file is truncated (an interrupted write or download?)");

  dir.write("x.bin", bin_image(20240520, 1, 1000, 2003));
  CHECK(open_error(f) == name + " declares 1000 tokens (2000 bytes after its 1024-byte header) but holds 2003: "
                               "3 unexpected bytes follow the last token");

  CHECK(open_error(dir.file("missing.bin")) == "cannot open '" + dir.file("missing.bin") + "' for reading: No such file or directory");

  dir.write("x.bin", bin_image(20240520, 1, 3, 6));
  CHECK(TokenShard::open(f).size() == 3);  // control: the same layout with a matching size opens
}

TEST_CASE("a text file is read as one token per byte") {
  test::TempDir dir;
  const std::string text = "Hello, world!\n\xC3\xA9\xFF";
  dir.write("notes.txt", text);
  const TokenShard shard = TokenShard::open(dir.file("notes.txt"));
  CHECK(shard.format() == TokenFormat::text_bytes);
  CHECK(shard.token_limit() == 256);
  REQUIRE(shard.size() == static_cast<int64_t>(text.size()));
  std::vector<int32_t> tokens(text.size());
  shard.read(0, shard.size(), tokens.data());
  CHECK(tokens[0] == 'H');
  CHECK(tokens[13] == '\n');
  CHECK(tokens[14] == 0xC3);  // bytes, not code points: UTF-8 stays two tokens
  CHECK(tokens[16] == 0xFF);
  // The format can be forced against the file name.
  CHECK_THROWS_AS(TokenShard::open(dir.file("notes.txt"), TokenFormat::llmc_bin), IoError);
  dir.write("raw.bin", "abc");
  CHECK(TokenShard::open(dir.file("raw.bin"), TokenFormat::text_bytes).size() == 3);
}
