#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "model/data_set.hpp"
#include "base/error.hpp"
#include "support/process.hpp"

using namespace ds;
using namespace ds::model;

namespace {

void write_tokens(const std::string& path, size_t count, uint16_t first) {
  std::vector<uint16_t> tokens(count);
  for (size_t i = 0; i < count; ++i) tokens[i] = static_cast<uint16_t>(first + i);
  write_token_shard(path, std::span<const uint16_t>(tokens));
}

std::vector<std::string> shard_names(const TokenDataset& data) {
  std::vector<std::string> names;
  for (const TokenShard& s : data.shards()) names.push_back(std::filesystem::path(s.name()).filename().string());
  return names;
}

}  // namespace

TEST_CASE("a glob of token files opens as one dataset in name order") {
  test::TempDir dir;
  write_tokens(dir.file("fineweb_train_000002.bin"), 30, 2000);
  write_tokens(dir.file("fineweb_train_000000.bin"), 10, 0);
  write_tokens(dir.file("fineweb_train_000001.bin"), 20, 1000);
  write_tokens(dir.file("fineweb_val_000000.bin"), 5, 9000);
  const TokenDataset data = TokenDataset::open(dir.file("fineweb_train_*.bin"));
  CHECK(shard_names(data) ==
        std::vector<std::string>{"fineweb_train_000000.bin", "fineweb_train_000001.bin", "fineweb_train_000002.bin"});
  CHECK(data.total_tokens() == 60);
  CHECK(data.token_limit() == 65536);
  CHECK(data.description() == dir.file("fineweb_train_*.bin"));
  CHECK(data.shards()[1][0] == 1000);
}

TEST_CASE("a data directory reads its .bin files, or else its .txt files") {
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("tokens"));
  write_tokens(dir.file("tokens/b.bin"), 8, 0);
  write_tokens(dir.file("tokens/a.bin"), 8, 0);
  dir.write("tokens/readme.txt", "ignored while .bin files exist");
  CHECK(shard_names(TokenDataset::open(dir.file("tokens"))) == std::vector<std::string>{"a.bin", "b.bin"});
  dir.write("text/2.txt", "two");
  dir.write("text/1.txt", "one!");
  const TokenDataset text = TokenDataset::open(dir.file("text") + "/");
  CHECK(shard_names(text) == std::vector<std::string>{"1.txt", "2.txt"});
  CHECK(text.total_tokens() == 7);
  CHECK(text.token_limit() == 256);
}

TEST_CASE("a data spec that names nothing is an IoError naming the spec") {
  test::TempDir dir;
  CHECK_THROWS_WITH(TokenDataset::open(dir.file("train_*.bin")), "no data file matches '" + dir.file("train_*.bin") + "'");
  std::filesystem::create_directories(dir.file("empty"));
  CHECK_THROWS_WITH(TokenDataset::open(dir.file("empty")),
                    "data directory '" + dir.file("empty") + "' holds no *.bin token files and no *.txt files");
  CHECK_THROWS_WITH(TokenDataset::open(dir.file("none.bin")),
                    "cannot open '" + dir.file("none.bin") + "' for reading: No such file or directory");
  CHECK_THROWS_AS(TokenDataset::open(""), IoError);
}

TEST_CASE("windows are counted per shard and never span two shards") {
  std::vector<TokenShard> shards;
  shards.push_back(TokenShard::from_text("a", std::string(10, 'a')));  // (10-1)/4 = 2 windows
  shards.push_back(TokenShard::from_text("b", std::string(4, 'b')));   // shorter than T+1: none
  shards.push_back(TokenShard::from_text("c", std::string(9, 'c')));   // (9-1)/4 = 2 windows
  shards.push_back(TokenShard::from_text("d", std::string(5, 'd')));   // exactly T+1: one
  const TokenDataset data(std::move(shards), "test");
  CHECK(data.window_count(4) == 5);
  CHECK(data.window_count(1) == 9 + 3 + 8 + 4);
  CHECK(data.window_count(100) == 0);
}
