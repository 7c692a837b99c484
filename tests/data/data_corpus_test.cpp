#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "model/data_corpus.hpp"
#include "model/data_shard.hpp"
#include "base/atomic_file.hpp"
#include "support/process.hpp"

using namespace ds;
using namespace ds::model;

namespace {

// Cross-entropy (nats per byte) on the last tenth of `text` of a smoothed order-k byte model
// (k = 0 or 1) counted on the first nine tenths.
double ngram_cross_entropy(const std::string& text, int k) {
  const size_t split = text.size() * 9 / 10;
  std::vector<std::array<double, 256>> counts(k == 0 ? 1 : 256);
  for (auto& c : counts) c.fill(0.01);
  auto context = [&](size_t i) { return k == 0 ? 0 : static_cast<unsigned char>(text[i - 1]); };
  for (size_t i = 1; i < split; ++i) counts[context(i)][static_cast<unsigned char>(text[i])] += 1;
  double nll = 0;
  for (size_t i = split; i < text.size(); ++i) {
    const auto& c = counts[context(i)];
    double total = 0;
    for (double x : c) total += x;
    nll -= std::log(c[static_cast<unsigned char>(text[i])] / total);
  }
  return nll / static_cast<double>(text.size() - split);
}

}  // namespace

TEST_CASE("the default corpus is the same text every time, and a longer one extends a shorter one") {
  const std::string a = default_corpus_text(1 << 20);
  CHECK(a.size() == size_t{1} << 20);
  CHECK(a == default_corpus_text(1 << 20));
  CHECK(default_corpus_text(3 << 20).substr(0, 1 << 20) == a);
  CHECK(default_corpus_text(1 << 20, 7) != a);
  // Pinned opening: a change to the generator changes every loss curve measured on it, so it must
  // be deliberate (update this line and say so in the commit).
  CHECK(a.substr(0, 43) == "On Tuesday, Jack came back to the library. ");
}

TEST_CASE("the default corpus is printable English-like text with learnable structure") {
  const std::string text = default_corpus_text(1 << 20);
  for (char c : text) REQUIRE(((c >= 32 && c < 127) || c == '\n'));
  std::set<std::string> words, sentences;
  std::string word, sentence;
  for (char c : text) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) word += c;
    else if (!word.empty()) words.insert(std::exchange(word, {}));
    sentence += c;
    if (c == '.') sentences.insert(std::exchange(sentence, {}));
  }
  CHECK(words.size() > 150);       // a real vocabulary, not a handful of words
  CHECK(sentences.size() > 2000);  // and no small set of sentences repeated
  // Byte statistics: far from uniform (ln 256 = 5.55), and context helps a lot, which is what a
  // model learns first.
  const double unigram = ngram_cross_entropy(text, 0);
  const double bigram = ngram_cross_entropy(text, 1);
  CHECK(unigram > 2.8);
  CHECK(unigram < 3.5);
  CHECK(bigram < unigram - 0.7);
  CHECK(bigram > 1.5);
}

TEST_CASE("facts in the default corpus never contradict each other") {
  const std::string text = default_corpus_text(1 << 20);
  size_t count = 0;
  for (size_t at = text.find("The fox is "); at != std::string::npos; at = text.find("The fox is ", at + 1)) {
    REQUIRE(text.compare(at + 11, 4, "red.") == 0);
    ++count;
  }
  CHECK(count > 50);
  for (size_t at = text.find("After Sunday comes "); at != std::string::npos; at = text.find("After Sunday comes ", at + 1))
    REQUIRE(text.compare(at + 19, 7, "Monday.") == 0);
  for (size_t at = text.find(" and 5 make "); at != std::string::npos; at = text.find(" and 5 make ", at + 1)) {
    const size_t start = text.rfind(' ', at - 1) + 1;
    const int x = std::stoi(text.substr(start, at - start));
    REQUIRE(std::stoi(text.substr(at + 12)) == x + 5);
  }
}

TEST_CASE("the default corpus can be written as a token file or as text and read back") {
  test::TempDir dir;
  write_default_corpus(dir.file("corpus.bin"), 100000);
  write_default_corpus(dir.file("corpus.txt"), 100000);
  const std::string text = default_corpus_text(100000);
  CHECK(read_file(dir.file("corpus.txt")) == text);
  const TokenShard shard = TokenShard::open(dir.file("corpus.bin"));
  REQUIRE(shard.size() == 100000);
  std::vector<int32_t> tokens(100000);
  shard.read(0, 100000, tokens.data());
  for (size_t i = 0; i < text.size(); ++i) REQUIRE(tokens[i] == static_cast<unsigned char>(text[i]));
  const TokenDataset data = default_corpus_dataset(100000);
  CHECK(data.total_tokens() == 100000);
  CHECK(data.token_limit() == 256);
  CHECK(data.description() == "default corpus (100000 bytes, seed 20240520)");
}
