// The batch triple, case by case as DeepSpeed infers it (research §1.1).
#include "config_test_util.hpp"

#include "config/config_batch.hpp"

using namespace ds::config;
using namespace ds::config::test;

namespace {

BatchConfig infer(std::optional<int64_t> tbs, std::optional<int64_t> mbs, std::optional<int64_t> gas, int ws) {
  return infer_batch(BatchKeys{tbs, mbs, gas}, ws, "ds_config.json");
}

std::string infer_error(std::optional<int64_t> tbs, std::optional<int64_t> mbs, std::optional<int64_t> gas, int ws) {
  try {
    infer(tbs, mbs, gas, ws);
  } catch (const ds::ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

void check(const BatchConfig& b, int64_t tbs, int64_t mbs, int64_t gas) {
  CHECK(b.train_batch_size == tbs);
  CHECK(b.micro_batch == mbs);
  CHECK(b.grad_accum == gas);
}

}  // namespace

TEST_CASE("all three batch keys are only checked") {
  check(infer(16, 4, 2, 2), 16, 4, 2);
  CHECK(infer_error(32, 4, 2, 2) ==
        "ds_config.json: train_batch_size (32) != train_micro_batch_size_per_gpu (4) * gradient_accumulation_steps (2) * "
        "world size (2) = 16; set train_batch_size to 16, or remove it to have it inferred");
}

TEST_CASE("train_batch_size and micro batch infer the accumulation steps") {
  check(infer(32, 4, std::nullopt, 2), 32, 4, 4);
  CHECK(infer_error(10, 4, std::nullopt, 1) ==
        "ds_config.json: train_batch_size (10) is not a multiple of train_micro_batch_size_per_gpu (4) * world size (1) = 4, "
        "so gradient_accumulation_steps cannot be inferred; set train_batch_size to 8 or 12, or set gradient_accumulation_steps");
  // Smaller than one micro batch per rank: DeepSpeed would infer 0 steps and fail.
  CHECK(infer_error(4, 4, std::nullopt, 2) ==
        "ds_config.json: train_batch_size (4) is not a multiple of train_micro_batch_size_per_gpu (4) * world size (2) = 8, "
        "so gradient_accumulation_steps cannot be inferred; set train_batch_size to 8, or set gradient_accumulation_steps");
}

TEST_CASE("train_batch_size and accumulation steps infer the micro batch") {
  check(infer(48, std::nullopt, 2, 3), 48, 8, 2);
  CHECK(infer_error(10, std::nullopt, 2, 3) ==
        "ds_config.json: train_batch_size (10) is not a multiple of gradient_accumulation_steps (2) * world size (3) = 6, "
        "so train_micro_batch_size_per_gpu cannot be inferred; set train_batch_size to 6 or 12, or set "
        "train_micro_batch_size_per_gpu");
}

TEST_CASE("micro batch and accumulation steps give train_batch_size") {
  check(infer(std::nullopt, 4, 8, 4), 128, 4, 8);
}

TEST_CASE("train_batch_size alone means one accumulation step") {
  check(infer(64, std::nullopt, std::nullopt, 8), 64, 8, 1);
  CHECK(infer_error(10, std::nullopt, std::nullopt, 4) ==
        "ds_config.json: train_batch_size (10) is not a multiple of the world size (4), so train_micro_batch_size_per_gpu "
        "cannot be inferred; set train_batch_size to 8 or 12, or set train_micro_batch_size_per_gpu");
}

TEST_CASE("micro batch alone means one accumulation step") {
  check(infer(std::nullopt, 3, std::nullopt, 5), 15, 3, 1);
}

TEST_CASE("neither train_batch_size nor micro batch is an error") {
  CHECK(infer_error(std::nullopt, std::nullopt, std::nullopt, 1) ==
        "ds_config.json: set train_micro_batch_size_per_gpu or train_batch_size (DeepSpeed needs one of them)");
  CHECK(infer_error(std::nullopt, std::nullopt, 4, 1) ==
        "ds_config.json: set train_micro_batch_size_per_gpu or train_batch_size (DeepSpeed needs one of them)");
}

TEST_CASE("the loader infers the batch with the data-parallel world size and records it") {
  const DsConfig c = load(R"({"train_batch_size": 64, "gradient_accumulation_steps": 2})", {}, 4);
  check(c.batch, 64, 8, 2);
  CHECK(c.resolved_json().at("train_micro_batch_size_per_gpu") == 8);
  CHECK(error_of(R"({"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 2})", {}, 2) ==
        "ds_config.json: train_batch_size (32) != train_micro_batch_size_per_gpu (4) * gradient_accumulation_steps (2) * "
        "world size (2) = 16; set train_batch_size to 16, or remove it to have it inferred");
}

TEST_CASE("a config without batch keys takes the micro batch from dsworker's flags") {
  AutoValues flags;
  flags.micro_batch = 6;
  flags.grad_accum = 3;
  const DsConfig c = load(R"({"zero_optimization": {"stage": 1}})", flags, 2);
  check(c.batch, 36, 6, 3);
  CHECK(error_of(R"({"zero_optimization": {"stage": 1}})") ==
        "ds_config.json: set train_micro_batch_size_per_gpu or train_batch_size (DeepSpeed needs one of them), or pass "
        "--micro_batch_size");
}

TEST_CASE("batch values written as integral floats are integers") {
  const DsConfig c = load(R"({"train_batch_size": 3.2e1, "train_micro_batch_size_per_gpu": 4.0})", {}, 2);
  check(c.batch, 32, 4, 4);
}
