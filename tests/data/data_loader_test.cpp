#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/data_loader.hpp"
#include "model/data_shuffle.hpp"
#include "base/error.hpp"
#include "support/process.hpp"

using namespace ds;
using namespace ds::model;

namespace {

constexpr int64_t k_shard_stride = 10000;

// Shards whose token at position p of shard s is s·10000 + p: every token names its own place, so
// a row shows exactly which window it came from.
std::shared_ptr<const TokenDataset> positional_dataset(const std::vector<int64_t>& sizes) {
  std::vector<TokenShard> shards;
  for (size_t s = 0; s < sizes.size(); ++s) {
    std::vector<uint16_t> tokens(static_cast<size_t>(sizes[s]));
    for (int64_t p = 0; p < sizes[s]; ++p) tokens[static_cast<size_t>(p)] = static_cast<uint16_t>(static_cast<int64_t>(s) * k_shard_stride + p);
    shards.push_back(TokenShard::from_tokens("shard" + std::to_string(s), std::move(tokens)));
  }
  return std::make_shared<const TokenDataset>(std::move(shards), "positional");
}

using Row = std::vector<int32_t>;  // a window: T inputs then the last target

// One rank's micro-batch as rows of T+1 tokens, checking that targets are inputs shifted by one.
std::vector<Row> next_rows(DataLoader& loader) {
  const auto& o = loader.options();
  std::vector<int32_t> inputs(static_cast<size_t>(o.micro_batch * o.seq_len), -1);
  std::vector<int32_t> targets(inputs.size(), -1);
  loader.next_micro_batch(inputs.data(), targets.data());
  std::vector<Row> rows;
  for (int64_t b = 0; b < o.micro_batch; ++b) {
    Row row(inputs.begin() + b * o.seq_len, inputs.begin() + (b + 1) * o.seq_len);
    for (int64_t t = 0; t + 1 < o.seq_len; ++t) REQUIRE(targets[static_cast<size_t>(b * o.seq_len + t)] == row[static_cast<size_t>(t + 1)]);
    row.push_back(targets[static_cast<size_t>((b + 1) * o.seq_len - 1)]);
    rows.push_back(std::move(row));
  }
  return rows;
}

// A global batch for one optimizer step, indexed by global sample j, from `world` loaders.
std::vector<Row> global_step(std::vector<DataLoader>& ranks) {
  const auto& o = ranks[0].options();
  std::vector<Row> batch(static_cast<size_t>(o.micro_batch * o.grad_accum * o.world_size));
  for (int64_t k = 0; k < o.grad_accum; ++k)
    for (int r = 0; r < o.world_size; ++r) {
      const std::vector<Row> rows = next_rows(ranks[static_cast<size_t>(r)]);
      for (int64_t i = 0; i < o.micro_batch; ++i) batch[static_cast<size_t>((k * o.world_size + r) * o.micro_batch + i)] = rows[static_cast<size_t>(i)];
    }
  return batch;
}

std::vector<DataLoader> make_ranks(std::shared_ptr<const TokenDataset> data, DataLoaderOptions options) {
  std::vector<DataLoader> ranks;
  for (int r = 0; r < options.world_size; ++r) {
    options.rank = r;
    ranks.emplace_back(data, options);
  }
  return ranks;
}

}  // namespace

TEST_CASE("a shuffled index is a permutation of its range for every size and key") {
  for (uint64_t n : {1ull, 2ull, 3ull, 5ull, 16ull, 17ull, 1000ull, 4099ull, 65536ull}) {
    for (uint64_t key : {0ull, 1ull, 0xdeadbeefull}) {
      std::vector<bool> hit(n, false);
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t j = shuffle_index(i, n, key);
        REQUIRE(j < n);
        REQUIRE_FALSE(hit[j]);
        hit[j] = true;
      }
    }
  }
  // and it shuffles: far from the identity, and different keys give different orders
  int fixed = 0, same = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    fixed += shuffle_index(i, 1000, 7) == i;
    same += shuffle_index(i, 1000, 7) == shuffle_index(i, 1000, 8);
  }
  CHECK(fixed < 10);
  CHECK(same < 10);
}

TEST_CASE("each row is one window of T+1 consecutive tokens inside one shard, never past its end") {
  const auto data = positional_dataset({1000, 37, 8, 523});
  DataLoaderOptions o{.seq_len = 8, .micro_batch = 5, .grad_accum = 1, .seed = 3};
  DataLoader loader(data, o);
  const int64_t windows = (999 / 8) + (36 / 8) + 0 + (522 / 8);
  REQUIRE(loader.window_count() == windows);
  std::set<int32_t> starts;
  for (int64_t step = 0; step < 3 * windows / 5 + 1; ++step) {
    for (const Row& row : next_rows(loader)) {
      const int32_t shard = row[0] / k_shard_stride;
      const int64_t size = std::vector<int64_t>{1000, 37, 8, 523}[static_cast<size_t>(shard)];
      REQUIRE(row[0] % k_shard_stride % 8 == 0);                    // windows start at multiples of T
      REQUIRE(row.back() % k_shard_stride < size);                  // the last target lies inside the shard
      for (size_t t = 1; t < row.size(); ++t) REQUIRE(row[t] == row[t - 1] + 1);
      starts.insert(row[0]);
    }
  }
  CHECK(static_cast<int64_t>(starts.size()) == windows);  // over 3 epochs every window came up
  CHECK(starts.count(1 * k_shard_stride + 24) == 1);         // the last window of the 37-token shard: 24..32
  CHECK(starts.count(2 * k_shard_stride) == 0);              // the 8-token shard is too short for T+1 = 9
}

TEST_CASE("every window comes once per epoch, in a new order each epoch") {
  const auto data = positional_dataset({2000});
  DataLoader loader(data, {.seq_len = 16, .micro_batch = 1, .seed = 11});
  const int64_t W = loader.window_count();
  REQUIRE(W == 1999 / 16);
  std::vector<int64_t> epoch0, epoch1;
  for (int64_t g = 0; g < W; ++g) epoch0.push_back(loader.window_of_sample(g));
  for (int64_t g = W; g < 2 * W; ++g) epoch1.push_back(loader.window_of_sample(g));
  std::vector<int64_t> sorted0 = epoch0, sorted1 = epoch1, all(static_cast<size_t>(W));
  std::sort(sorted0.begin(), sorted0.end());
  std::sort(sorted1.begin(), sorted1.end());
  for (int64_t w = 0; w < W; ++w) all[static_cast<size_t>(w)] = w;
  CHECK(sorted0 == all);
  CHECK(sorted1 == all);
  CHECK(epoch0 != epoch1);
  CHECK(epoch0 != all);
}

TEST_CASE("the global batch is the same for world sizes 1, 2 and 4 with the same train_batch_size") {
  const auto data = positional_dataset({3000, 1500});
  // train_batch_size 16 in every layout: (micro_batch, grad_accum, world_size)
  struct Layout { int64_t micro_batch, grad_accum; int world_size; };
  const std::vector<Layout> layouts{{2, 8, 1}, {16, 1, 1}, {2, 4, 2}, {8, 1, 2}, {1, 4, 4}, {4, 1, 4}, {2, 2, 4}};
  std::vector<std::vector<Row>> reference;
  for (const Layout& l : layouts) {
    DataLoaderOptions o{.seq_len = 12, .micro_batch = l.micro_batch, .grad_accum = l.grad_accum, .world_size = l.world_size, .seed = 42};
    std::vector<DataLoader> ranks = make_ranks(data, o);
    std::vector<std::vector<Row>> steps;
    for (int s = 0; s < 40; ++s) steps.push_back(global_step(ranks));  // 40 × 16 = 640 samples: past one epoch (373 windows)
    if (reference.empty()) {
      reference = steps;
      continue;
    }
    INFO("micro_batch " << l.micro_batch << ", grad_accum " << l.grad_accum << ", world_size " << l.world_size);
    CHECK(steps == reference);
    for (DataLoader& r : ranks) {
      CHECK(r.step() == 40);
      CHECK(r.epoch() == 640 / 373);
    }
  }
  // The union of a step's micro-batches has no repeated window within an epoch.
  std::set<Row> first_step(reference[0].begin(), reference[0].end());
  CHECK(first_step.size() == 16);
}

TEST_CASE("the data order is a function of the seed") {
  const auto data = positional_dataset({5000});
  auto first_batches = [&](uint64_t seed) {
    DataLoader loader(data, {.seq_len = 8, .micro_batch = 4, .seed = seed});
    std::vector<Row> rows;
    for (int i = 0; i < 5; ++i)
      for (Row& r : next_rows(loader)) rows.push_back(std::move(r));
    return rows;
  };
  CHECK(first_batches(1) == first_batches(1));
  CHECK(first_batches(1) != first_batches(2));
}

TEST_CASE("a restored data loader continues with exactly the batch that would have come next") {
  const auto data = positional_dataset({4000, 777});
  const DataLoaderOptions o{.seq_len = 10, .micro_batch = 3, .grad_accum = 2, .world_size = 2, .rank = 1, .seed = 99};
  DataLoader original(data, o);
  for (int i = 0; i < 7; ++i) next_rows(original);  // 3 steps and one micro-step into the 4th
  const std::string saved = original.state().dump();

  DataLoaderOptions other = o;
  other.seed = 12345;  // the saved seed wins
  DataLoader resumed(data, other);
  resumed.restore(nlohmann::json::parse(saved));
  CHECK(resumed.step() == 3);
  CHECK(resumed.micro_step() == 1);
  CHECK(resumed.state() == original.state());
  for (int i = 0; i < 300; ++i) REQUIRE(next_rows(resumed) == next_rows(original));  // through epoch boundaries

  const nlohmann::json state = nlohmann::json::parse(saved);
  CHECK(state["format"] == "dslaunch.data_loader");
  CHECK(state["version"] == 1);
  CHECK(state["step"] == 3);
  CHECK(state["micro_step"] == 1);
  CHECK(state["sample"] == 3 * 12);
  CHECK(state["seed"] == 99);
}

TEST_CASE("a data position saved at a step boundary resumes on another world size") {
  const auto data = positional_dataset({6000});
  DataLoaderOptions one{.seq_len = 8, .micro_batch = 2, .grad_accum = 4, .world_size = 1, .seed = 5};
  std::vector<DataLoader> single = make_ranks(data, one);
  for (int s = 0; s < 5; ++s) global_step(single);
  const nlohmann::json saved = single[0].state();

  DataLoaderOptions two{.seq_len = 8, .micro_batch = 4, .grad_accum = 1, .world_size = 2, .seed = 5};
  std::vector<DataLoader> pair = make_ranks(data, two);
  for (DataLoader& r : pair) r.restore(saved);
  for (int s = 0; s < 10; ++s) REQUIRE(global_step(pair) == global_step(single));
}

TEST_CASE("a data position that does not fit the run is a CheckpointError saying why") {
  const auto data = positional_dataset({3000});
  DataLoader saved_loader(data, {.seq_len = 8, .micro_batch = 2, .grad_accum = 2, .seed = 1});
  next_rows(saved_loader);  // mid-step
  const nlohmann::json saved = saved_loader.state();

  DataLoader longer(data, {.seq_len = 16, .micro_batch = 2, .grad_accum = 2, .seed = 1});
  CHECK_THROWS_AS(longer.restore(saved), CheckpointError);
  CHECK_THROWS_WITH(longer.restore(saved), "the checkpoint's data position was saved with seq_len 8, this run uses 16; "
                                           "resume with the same sequence length");

  const auto other_data = positional_dataset({2000});
  DataLoader changed(other_data, {.seq_len = 8, .micro_batch = 2, .grad_accum = 2, .seed = 1});
  CHECK_THROWS_WITH(changed.restore(saved),
                    "the checkpoint's data position is for windows [0, +374) of its dataset, this run's dataset 'positional' "
                    "(2000 tokens in 1 file) has [0, +249): the data changed since the checkpoint; resume on the same data");

  DataLoader bigger(data, {.seq_len = 8, .micro_batch = 4, .grad_accum = 2, .seed = 1});
  CHECK_THROWS_WITH(bigger.restore(saved), "the checkpoint's data position is in the middle of an optimizer step of "
                                           "train_batch_size 4, this run's is 8; resume from a checkpoint taken at a step "
                                           "boundary, or with the same batch size");

  nlohmann::json broken = saved;
  broken.erase("sample");
  CHECK_THROWS_WITH(saved_loader.restore(broken), "data loader state lacks 'sample': the checkpoint is damaged or not ours");
  broken = saved;
  broken["step"] = "three";
  CHECK_THROWS_WITH(saved_loader.restore(broken), "data loader state has a malformed 'step': \"three\"");
}

TEST_CASE("the validation split is held out from training and read in order from the start every time") {
  const auto data = positional_dataset({1601});  // 200 windows of T+1 = 9
  const TrainValSplit split = split_train_val(*data, 8, 0.05);
  CHECK(split.train.first == 0);
  CHECK(split.train.count == 190);
  CHECK(split.val.first == 190);
  CHECK(split.val.count == 10);

  DataLoader train(data, {.seq_len = 8, .micro_batch = 10, .seed = 1, .windows = split.train});
  std::set<int32_t> train_starts;
  for (int i = 0; i < 19; ++i)
    for (const Row& r : next_rows(train)) train_starts.insert(r[0]);
  CHECK(train_starts.size() == 190);
  CHECK(*train_starts.rbegin() == 189 * 8);  // never a validation window

  DataLoader val(data, {.seq_len = 8, .micro_batch = 2, .world_size = 2, .rank = 1, .order = SampleOrder::sequential,
                        .windows = split.val});
  auto pass = [&] {
    val.reset();
    std::vector<int32_t> starts;
    for (int b = 0; b < 3; ++b)
      for (const Row& r : next_rows(val)) starts.push_back(r[0]);
    return starts;
  };
  // rank 1 of 2 takes global samples 2,3 of each batch of 4: windows 192,193 | 196,197 | 190+(10 mod 10),191
  CHECK(pass() == std::vector<int32_t>{192 * 8, 193 * 8, 196 * 8, 197 * 8, 190 * 8, 191 * 8});
  CHECK(pass() == pass());

  CHECK_THROWS_WITH(split_train_val(*positional_dataset({10}), 8, 0.1),
                    "dataset 'positional' (10 tokens in 1 file) has only 1 window(s) of 9 tokens, too few to hold out a "
                    "validation part and still train; use more data or a separate validation file");
  CHECK(split_train_val(*data, 8, 0.0).val.count == 0);
}

TEST_CASE("a dataset with no window of T+1 tokens is an IoError naming it and the fix") {
  const auto data = positional_dataset({100, 50});
  CHECK_THROWS_AS(DataLoader(data, {.seq_len = 100, .micro_batch = 1}), IoError);
  CHECK_THROWS_WITH(DataLoader(data, {.seq_len = 100, .micro_batch = 1}),
                    "dataset 'positional' (150 tokens in 2 files) has no window of seq_len+1 = 101 tokens within one file; "
                    "use a shorter sequence length or more data");
}

TEST_CASE("a token outside the model's vocabulary is an IoError naming the file and position") {
  test::TempDir dir;
  std::vector<uint16_t> tokens(100, 7);
  tokens[42] = 60000;
  write_token_shard(dir.file("bad.bin"), std::span<const uint16_t>(tokens));
  auto data = std::make_shared<const TokenDataset>(TokenDataset::open(dir.file("bad.bin")));
  DataLoader loader(data, {.seq_len = 99, .micro_batch = 1, .vocab_size = 50257});
  std::vector<int32_t> inputs(99), targets(99);
  CHECK_THROWS_WITH(loader.next_micro_batch(inputs.data(), targets.data()),
                    "data file '" + dir.file("bad.bin") + "' holds token 60000 at position 42, outside the model's vocabulary "
                    "of 50257 tokens (was it tokenized for another model?)");
  DataLoader unchecked(data, {.seq_len = 99, .micro_batch = 1});
  unchecked.next_micro_batch(inputs.data(), targets.data());
  CHECK(inputs[42] == 60000);

  // Text is read as bytes: a model with fewer than 256 tokens cannot take it.
  auto text = std::make_shared<const TokenDataset>(std::vector<TokenShard>{TokenShard::from_text("notes", std::string(50, 'a'))}, "notes.txt");
  CHECK_THROWS_AS(DataLoader(text, {.seq_len = 8, .micro_batch = 1, .vocab_size = 100}), UsageError);
  CHECK_THROWS_WITH(DataLoader(text, {.seq_len = 8, .micro_batch = 1, .vocab_size = 100}),
                    "dataset 'notes.txt' (50 tokens in 1 file) is read as bytes (256 token ids), more than the model's "
                    "vocabulary of 100; use a vocabulary of at least 256");
}
