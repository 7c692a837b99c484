// The default training corpus: English-like text generated on the fly from a small built-in world,
// so that a run needs no download and no data file, yet a tiny GPT has something real to learn.
//
// What it is: paragraphs about a fixed cast (16 people, 16 animals, 12 places) drawn from 16
// sentence templates by a seeded counter-based generator. Some content is random (who walks
// where, on which day, how many apples), some is fixed fact that is repeated throughout (the fox is
// always red, lives in a den, eats berries and barks; after Monday comes Tuesday; 7 and 5 make 12),
// and dialogue lines agree within a paragraph. A byte-level model first learns spelling and
// spacing, then words and grammar, then the facts: a 4-layer 128-wide GPT (T=64, batch 16) goes
// from 5.2 to below 3 nats per byte in 100 steps and to 0.45 in 700 (docs/DATA.md).
//
// Tokens are bytes (vocabulary 256; every byte is printable ASCII, '\n' or ' '). The text is the
// same on every machine for a given (size, seed): only integer arithmetic decides it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/data_set.hpp"

namespace ds::model {

constexpr size_t k_default_corpus_bytes = size_t{4} << 20;  // 4 MiB: 4,095 windows of 1024+1 tokens
constexpr uint64_t k_default_corpus_seed = 20240520;

// The first `bytes` bytes of the corpus for `seed` (a prefix of any longer corpus of the same seed).
std::string default_corpus_text(size_t bytes = k_default_corpus_bytes, uint64_t seed = k_default_corpus_seed);

// The same as byte-level tokens (one uint16 per byte, values < 256).
std::vector<uint16_t> default_corpus_tokens(size_t bytes = k_default_corpus_bytes, uint64_t seed = k_default_corpus_seed);

// An in-memory dataset of one text shard named "default corpus (<bytes> bytes, seed <seed>)".
TokenDataset default_corpus_dataset(size_t bytes = k_default_corpus_bytes, uint64_t seed = k_default_corpus_seed);

// Writes the corpus to `path` for inspection or for other tools: an llm.c token file when the path
// ends in ".bin", plain text otherwise. Atomic (AtomicFile); throws IoError.
void write_default_corpus(const std::string& path, size_t bytes = k_default_corpus_bytes,
                          uint64_t seed = k_default_corpus_seed);

}  // namespace ds::model
