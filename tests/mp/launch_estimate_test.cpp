// dslaunch --estimate: the memory table of the dsworker run the command would start, on the
// planned world, and nothing started.
#include <catch2/catch.hpp>

#include "support/process.hpp"

using ds::test::run;

TEST_CASE("dslaunch --estimate prints the memory table for the dsworker run on the planned world and starts nothing") {
  const auto r = run({ds::test::dslaunch_bin(), "--estimate", "--num_gpus=4", "--master_port=0", ds::test::dsworker_bin(),
                      "--model", "gpt2", "--micro_batch", "2", "--seq_len", "256", "--deepspeed",
                      ds::test::source_dir() + "/configs/zero3_offload.json", "--precision", "bf16"},
                     {.set_env = {{"DSLAUNCH_GPU_COUNT", "0"}}});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("Memory estimate for gpt2 ("));
  CHECK_THAT(r.out, Catch::Contains("World: 1 node(s) x 4 rank(s); bf16 params"));
  CHECK_THAT(r.out, Catch::Contains("micro-batch 2 x 256 tokens, accumulation 1"));
  CHECK_THAT(r.out, Catch::Contains("This run: ZeRO-3 + offload_optimizer=cpu + offload_param=cpu"));
  CHECK(r.out.find("[rank") == std::string::npos);  // no worker ran
}

TEST_CASE("dslaunch --estimate with a config error or with --dry_run fails with one clear line") {
  ds::test::TempDir dir;
  dir.write("bad.json", R"({"zero_optimization": {"stage": 3, "stage3_prefetch_bucket_sise": 10}})");
  const auto bad = run({ds::test::dslaunch_bin(), "--estimate", "--num_gpus=2", ds::test::dsworker_bin(), "--deepspeed", dir.file("bad.json")},
                       {.set_env = {{"DSLAUNCH_GPU_COUNT", "0"}}});
  CHECK(bad.exit_code == 4);
  CHECK_THAT(bad.err, Catch::Contains("stage3_prefetch_bucket_sise: unknown key; did you mean 'stage3_prefetch_bucket_size'?"));
  const auto both = run({ds::test::dslaunch_bin(), "--estimate", "--dry_run", "/bin/true"});
  CHECK(both.exit_code == 2);
  CHECK_THAT(both.err, Catch::Contains("--dry_run and --estimate both print instead of running: pass one"));
}
