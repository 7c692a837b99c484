// Training data, in one include: token files (data_shard.hpp), datasets of them (data_set.hpp),
// the built-in default corpus (data_corpus.hpp) and the world-size-independent batch sampler
// (data_loader.hpp). A worker typically does:
//
//   auto data = std::make_shared<TokenDataset>(spec.empty() ? default_corpus_dataset() : TokenDataset::open(spec));
//   TrainValSplit split = split_train_val(*data, T, 0.01);
//   DataLoader train(data, {.seq_len = T, .micro_batch = B, .grad_accum = A, .world_size = W, .rank = r,
//                           .seed = seed, .windows = split.train, .vocab_size = V});
//   for each micro-step: train.next_micro_batch(inputs, targets);   // (B,T) each
//   checkpoint: save train.state(); resume: train.restore(saved)
#pragma once

#include "model/data_corpus.hpp"
#include "model/data_loader.hpp"
#include "model/data_set.hpp"
#include "model/data_shard.hpp"
#include "model/data_shuffle.hpp"
