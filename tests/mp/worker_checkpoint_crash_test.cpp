// A re-save never loses the last good checkpoint (Note [tag swap], lib/zero/checkpoint.cpp): a job
// re-run into a save_dir whose `latest` names the very tag it saves again is killed with SIGKILL at
// each point of that save (the test hook DS_TEST_CHECKPOINT_KILL_AT), and then `--resume` of the
// save_dir still finds a complete checkpoint, cleans up what the kill left (saying so), and
// continues the same losses as a run that was never interrupted.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "mp/worker_fixtures.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;
namespace fs = std::filesystem;

// A constant learning rate (no scheduler), so a run's first steps do not depend on --steps and a
// 3-step run saves the same global_step3 as the first half of a 6-step run.
constexpr const char* k_config =
    R"({"train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 3},
        "optimizer": {"type": "AdamW", "params": {"lr": 0.001}}})";

std::vector<std::string> job_args(int steps) {
  return small_model_args(steps) + std::vector<std::string>{"--deepspeed", "constant.json", "--precision", "fp32"};
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> hidden_entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().rfind('.', 0) == 0) names.push_back(entry.path().filename().string());
  return names;
}

}  // namespace

TEST_CASE("a re-save of the tag latest names, killed with SIGKILL at any point, leaves a complete latest that resumes with the same losses") {
  Sandbox box;
  box.dir.write("constant.json", k_config);
  // The uninterrupted run the resumed ones must match.
  launch_dsworker_ok(box, 2, job_args(6) + std::vector<std::string>{"--metrics", "reference.jsonl"});
  const auto reference = read_step_metrics(box.dir.file("reference.jsonl"));
  REQUIRE(reference.size() == 6);
  // An earlier job that ended at step 3: latest names global_step3.
  launch_dsworker_ok(box, 2, job_args(3) + std::vector<std::string>{"--save_dir", "earlier", "--metrics", "earlier.jsonl"});
  REQUIRE(trimmed(slurp(box.dir.file("earlier/latest"))) == "global_step3");
  const auto earlier = read_step_metrics(box.dir.file("earlier.jsonl"));
  REQUIRE(earlier.size() == 3);
  CHECK(earlier[2].at("loss").dump() == reference[2].at("loss").dump());  // the premise: step 3 does not depend on --steps

  struct Point {
    std::string kill_at;
    std::string swap;          // DS_TEST_CHECKPOINT_SWAP: "" (exchange) or "rename" (two renames)
    bool tag_in_place;         // global_step3 exists right after the kill
    std::string cleanup_line;  // what the resumed job logs about the leftover
  };
  const std::vector<Point> points = {
      {"after_shards", "", true, "removed ckpt/.global_step3.saving, left by a checkpoint save that was interrupted"},
      {"after_manifest", "", true, "removed ckpt/.global_step3.saving, left by a checkpoint save that was interrupted"},
      {"after_swap", "", true, "removed ckpt/.global_step3.saving, left by a checkpoint save that was interrupted"},
      {"after_manifest", "rename", true, "removed ckpt/.global_step3.saving, left by a checkpoint save that was interrupted"},
      {"after_rename_old", "rename", false,
       "restored checkpoint ckpt/global_step3 from ckpt/.global_step3.replaced, left by a save that was interrupted before its new tag was in place"},
      {"after_swap", "rename", true, "removed ckpt/.global_step3.replaced, the checkpoint an interrupted save was replacing (ckpt/global_step3 is complete)"},
  };
  for (const Point& p : points) {
    INFO("killed at " << p.kill_at << (p.swap.empty() ? " (exchange)" : " (two renames)"));
    fs::remove_all(box.dir.file("ckpt"));
    fs::copy(box.dir.file("earlier"), box.dir.file("ckpt"), fs::copy_options::recursive);

    // The re-run into the same save_dir, killed during its save of global_step3.
    std::map<std::string, std::string> env = {{"DS_TEST_CHECKPOINT_KILL_AT", p.kill_at}};
    if (!p.swap.empty()) env["DS_TEST_CHECKPOINT_SWAP"] = p.swap;
    std::vector<std::string> args = {"--num_gpus=2", "--master_port=0", ds::test::dsworker_bin()};
    for (const auto& a : job_args(6) + std::vector<std::string>{"--save_dir", "ckpt", "--save_interval", "3"}) args.push_back(a);
    const RunResult killed = box.run(args, env, 120s);
    INFO("the killed job's stderr:\n" << killed.err);
    REQUIRE(!killed.timed_out);
    CHECK(killed.exit_code != 0);
    REQUIRE(killed.err.find("DS_TEST_CHECKPOINT_KILL_AT=" + p.kill_at + ": rank 0 kills itself with SIGKILL") != std::string::npos);

    CHECK(trimmed(slurp(box.dir.file("ckpt/latest"))) == "global_step3");
    CHECK(fs::exists(box.dir.file("ckpt/global_step3/manifest.json")) == p.tag_in_place);
    CHECK(!hidden_entries(box.dir.file("ckpt")).empty());  // the kill did leave something to clean up

    const RunResult resumed = launch_dsworker_ok(
        box, 2, job_args(6) + std::vector<std::string>{"--resume", "ckpt", "--save_dir", "ckpt", "--save_interval", "3", "--metrics", "resumed.jsonl"});
    CHECK(resumed.err.find(p.cleanup_line) != std::string::npos);
    CHECK(resumed.err.find("resumed from ckpt/global_step3 at step 3") != std::string::npos);
    CHECK(hidden_entries(box.dir.file("ckpt")).empty());
    CHECK(trimmed(slurp(box.dir.file("ckpt/latest"))) == "global_step6");
    const auto continued = read_step_metrics(box.dir.file("resumed.jsonl"));
    REQUIRE(continued.size() == 3);
    for (size_t i = 0; i < continued.size(); ++i) {
      INFO("step " << continued[i].at("step"));
      CHECK(continued[i].at("step") == reference[i + 3].at("step"));
      CHECK(continued[i].at("loss").dump() == reference[i + 3].at("loss").dump());
      CHECK(continued[i].at("grad_norm").dump() == reference[i + 3].at("grad_norm").dump());
    }
    fs::remove(box.dir.file("resumed.jsonl"));
  }
}

TEST_CASE("a misspelt DS_TEST_CHECKPOINT_KILL_AT stops the save with the valid points named") {
  Sandbox box;
  std::vector<std::string> args = {"--num_gpus=1", "--master_port=0", ds::test::dsworker_bin()};
  for (const auto& a : small_model_args(1) + std::vector<std::string>{"--save_dir", "ckpt"}) args.push_back(a);
  const RunResult r = box.run(args, {{"DS_TEST_CHECKPOINT_KILL_AT", "after_shard"}}, 120s);
  INFO(r.err);
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("DS_TEST_CHECKPOINT_KILL_AT=after_shard is not a point of a checkpoint save; use one of after_shards, "
                   "after_manifest, after_rename_old, after_swap (a test hook: unset it for real runs)") != std::string::npos);
  CHECK(!fs::exists(box.dir.file("ckpt/latest")));
}
