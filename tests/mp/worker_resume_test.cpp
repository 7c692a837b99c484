// Checkpoints and resume through real processes: a resumed job continues the same loss curve
// bit for bit; resuming on another world size or stage continues it within rounding; a job killed
// with SIGKILL mid-training leaves a `latest` that loads. (tests/zero/checkpoint_test.cpp checks
// the engine's side in-process; here it is dsworker's whole loop: model, Adam, scheduler, data
// position, step counter, metrics.)
#include <catch2/catch.hpp>

#include <signal.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mp/worker_fixtures.hpp"

namespace {

using namespace ds::test::mp;
using ds::test::RunResult;
namespace fs = std::filesystem;

// zero2.json's WarmupCosineLR with 2 warm-up steps: the resumed part must pick up the schedule,
// not restart it.
std::vector<std::string> training_args(int steps, const std::string& config, int micro_batch) {
  return small_model_args(steps) + std::vector<std::string>{"--deepspeed", shipped_config(config), "--precision", "fp32",
                                                            "--micro_batch", std::to_string(micro_batch), "--warmup_steps", "2"};
}

std::string latest_tag(const std::string& save_dir) {
  std::string tag = slurp(save_dir + "/latest");
  while (!tag.empty() && (tag.back() == '\n' || tag.back() == ' ')) tag.pop_back();
  return tag;
}

// The step of a "global_step<N>" tag; -1 for anything else.
int step_of(const std::string& tag) {
  const std::string prefix = "global_step";
  if (tag.rfind(prefix, 0) != 0 || tag.size() == prefix.size() ||
      tag.find_first_not_of("0123456789", prefix.size()) != std::string::npos)
    return -1;
  return std::stoi(tag.substr(prefix.size()));
}

}  // namespace

TEST_CASE("a job resumed from a mid-run checkpoint repeats the rest bit for bit (losses, learning rates, gradient norms, loss scales, weights and Adam moments) in fp32, bf16 and fp16") {
  struct Variant {
    std::string name;
    std::string config;                     // a file of configs/, or one written into the sandbox
    std::vector<std::string> extra;         // flags besides the model's
    int steps, save_at;
  };
  // fp16: the loss scale starts too high (2^17) and grows after every 2 good steps, so it overflows,
  // skips and halves on both sides of the checkpoint: the scaler's state must come back whole.
  const std::string scaler_config =
      R"({"train_micro_batch_size_per_gpu": 2, "zero_optimization": {"stage": 3},
          "fp16": {"enabled": true, "initial_scale_power": 17, "loss_scale_window": 2, "hysteresis": 1}})";
  const std::vector<Variant> variants = {
      {"fp32, ZeRO-2, warm-up + cosine schedule", shipped_config("zero2.json"), {"--precision", "fp32", "--micro_batch", "2", "--warmup_steps", "2"}, 6, 3},
      {"bf16, ZeRO-2", shipped_config("bf16_zero2.json"), {"--micro_batch", "2", "--warmup_steps", "2"}, 6, 3},
      {"fp16 with dynamic loss scaling, ZeRO-3", "scaler.json", {}, 10, 5},
  };
  for (const Variant& v : variants) {
    INFO(v.name);
    Sandbox box;
    box.dir.write("scaler.json", scaler_config);
    const auto args = small_model_args(v.steps) + std::vector<std::string>{"--deepspeed", v.config} + v.extra;
    const std::string saved = "full/global_step" + std::to_string(v.save_at);
    const std::string last = "global_step" + std::to_string(v.steps);
    launch_dsworker_ok(box, 2, args + std::vector<std::string>{"--save_dir", "full", "--save_interval", std::to_string(v.save_at), "--metrics", "full.jsonl"});
    REQUIRE(fs::exists(box.dir.file(saved + "/manifest.json")));
    REQUIRE(latest_tag(box.dir.file("full")) == last);

    const RunResult r = launch_dsworker_ok(box, 2, args + std::vector<std::string>{"--resume", saved, "--save_dir", "resumed", "--metrics", "resumed.jsonl"});
    CHECK(r.err.find("resumed from " + saved + " at step " + std::to_string(v.save_at) + " (saved with 2 rank(s)") != std::string::npos);

    const auto full = read_step_metrics(box.dir.file("full.jsonl"));
    const auto resumed = read_step_metrics(box.dir.file("resumed.jsonl"));
    REQUIRE(full.size() == static_cast<size_t>(v.steps));
    REQUIRE(resumed.size() == static_cast<size_t>(v.steps - v.save_at));
    // What the checkpoint must carry changes after it (the lr schedule; fp16's scale and skips),
    // or the comparison would prove little.
    std::set<std::string> after;
    for (size_t i = static_cast<size_t>(v.save_at); i < full.size(); ++i) after.insert(full[i].at("lr").dump() + " " + full[i].at("loss_scale").dump());
    CHECK(after.size() > 1);
    if (v.name.rfind("fp16", 0) == 0) CHECK(full.back().at("skipped_total").get<int>() > full[static_cast<size_t>(v.save_at) - 1].at("skipped_total").get<int>());
    for (size_t i = 0; i < resumed.size(); ++i) {
      const auto& a = full[i + static_cast<size_t>(v.save_at)];
      const auto& b = resumed[i];
      INFO("step " << a.at("step") << "\nuninterrupted: " << a.dump() << "\nresumed:       " << b.dump());
      CHECK(b.at("step") == a.at("step"));
      CHECK(b.at("loss").get<double>() == a.at("loss").get<double>());  // JSON numbers are written round-trip exact
      CHECK(b.at("loss").dump() == a.at("loss").dump());
      CHECK(b.at("lr") == a.at("lr"));
      CHECK(b.at("grad_norm").get<double>() == a.at("grad_norm").get<double>());
      CHECK(b.at("loss_scale").get<double>() == a.at("loss_scale").get<double>());
      CHECK(b.at("applied") == a.at("applied"));
      CHECK(b.at("skipped_total") == a.at("skipped_total"));
      CHECK(b.at("tokens") == a.at("tokens"));
    }
    CHECK(differing(export_weights(box, box.dir.file("resumed"), "resumed_hf"), export_weights(box, box.dir.file("full"), "full_hf")).empty());
    CHECK(differing(checkpoint_state(box.dir.file("resumed/" + last)), checkpoint_state(box.dir.file("full/" + last))).empty());
    // The resumed job's final validation saw the same weights too.
    CHECK(read_done_metrics(box.dir.file("resumed.jsonl")).at("val_loss").get<double>() ==
          read_done_metrics(box.dir.file("full.jsonl")).at("val_loss").get<double>());
  }
}

TEST_CASE("a checkpoint saved on 2 ranks with ZeRO stage 2 resumes on 1 rank with stage 0 and on 4 ranks with stage 3 (same global batch), continuing within rounding") {
  Sandbox box;
  // Global batch 4 throughout: 2 ranks x micro-batch 2, 1 x 4, 4 x 1.
  launch_dsworker_ok(box, 2, training_args(6, "zero2.json", 2) + std::vector<std::string>{"--save_dir", "full", "--save_interval", "3", "--metrics", "full.jsonl"});
  const auto full = read_step_metrics(box.dir.file("full.jsonl"));
  REQUIRE(full.size() == 6);
  const Weights full_weights = export_weights(box, box.dir.file("full"), "full_hf");
  const Weights step3_weights = export_weights(box, box.dir.file("full/global_step3"), "step3_hf");

  struct Resume {
    int ranks;
    std::string config;
    int micro_batch;
    int stage;
  };
  for (const Resume& resume : {Resume{1, "zero0.json", 4, 0}, Resume{4, "zero3.json", 1, 3}}) {
    INFO(resume.ranks << " rank(s), " << resume.config);
    const std::string name = "resumed" + std::to_string(resume.ranks);
    const RunResult again = launch_dsworker_ok(
        box, resume.ranks,
        training_args(6, resume.config, resume.micro_batch) +
            std::vector<std::string>{"--resume", "full/global_step3", "--save_dir", name, "--metrics", name + ".jsonl"});
    CHECK(again.err.find("resumed from full/global_step3 at step 3 (saved with 2 rank(s), ZeRO stage 2)") != std::string::npos);
    CHECK(again.err.find("ZeRO stage " + std::to_string(resume.stage) + ", fp32, " + std::to_string(resume.ranks) +
                         " rank(s) on cpu, global batch 4 x 16 tokens") != std::string::npos);
    const auto resumed = read_step_metrics(box.dir.file(name + ".jsonl"));
    REQUIRE(resumed.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      INFO("step " << full[i + 3].at("step"));
      CHECK(resumed[i].at("step") == full[i + 3].at("step"));
      CHECK(resumed[i].at("loss").get<double>() == Approx(full[i + 3].at("loss").get<double>()).epsilon(1e-5));
      CHECK(resumed[i].at("lr") == full[i + 3].at("lr"));
    }
    const Weights weights = export_weights(box, box.dir.file(name), name + "_hf");
    const double rel = relative_l2(weights, full_weights);
    INFO("relative L2 distance to the uninterrupted run: " << rel << "; steps 4-6 moved the weights by "
                                                            << relative_l2(step3_weights, full_weights));
    CHECK(rel < 1e-5);
    CHECK(relative_l2(step3_weights, full_weights) > 1e-3);  // the tolerance is far below what training changes
  }
}

TEST_CASE("a job killed with SIGKILL while it trains and saves every step leaves a latest checkpoint that resumes and trains to the end") {
  Sandbox box;
  const std::vector<std::string> launch = {ds::test::dslaunch_bin(), "--num_gpus=2", "--master_port=0", ds::test::dsworker_bin()};
  // Stage 3: every rank writes its shard of the parameters, the most a crash can interrupt.
  Background job(launch + training_args(100000, "zero3.json", 2) + std::vector<std::string>{"--save_dir", "ckpt", "--save_interval", "1"},
                 box.env_with({}), box.dir);
  const std::string latest = box.dir.file("ckpt/latest");
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (std::chrono::steady_clock::now() < deadline && !(fs::exists(latest) && step_of(latest_tag(box.dir.file("ckpt"))) >= 3))
    std::this_thread::sleep_for(2ms);
  INFO(job.err());
  REQUIRE(fs::exists(latest));
  const std::vector<pid_t> workers = descendants_running(job.pid(), ds::test::dsworker_bin());
  for (pid_t pid : workers) job.also_kill(pid);
  CHECK(workers.size() == 2);
  // Aim the kill at a save in progress: the next tag's directory exists, its manifest does not yet.
  // (Whether it lands there is up to the scheduler; the assertions hold either way.)
  const auto aim_until = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < aim_until) {
    const std::string next = box.dir.file("ckpt/global_step" + std::to_string(step_of(latest_tag(box.dir.file("ckpt"))) + 1));
    if (fs::exists(next) && !fs::exists(next + "/manifest.json")) break;
    std::this_thread::yield();
  }
  ::kill(-job.pid(), SIGKILL);  // dslaunch's process group; its workers die with it (PR_SET_PDEATHSIG)
  REQUIRE(job.wait(30s).has_value());
  for (pid_t pid : workers) CHECK(wait_gone(pid, 30s));
  std::vector<std::string> incomplete;
  for (const auto& entry : fs::directory_iterator(box.dir.file("ckpt")))
    if (entry.is_directory() && !fs::exists(entry.path() / "manifest.json")) incomplete.push_back(entry.path().filename());
  INFO("tag directories left without a manifest by the kill: " << incomplete.size() << (incomplete.empty() ? "" : " (" + incomplete[0] + ")"));

  const std::string tag = latest_tag(box.dir.file("ckpt"));
  INFO("latest names " << tag);
  const int step = step_of(tag);
  REQUIRE(step >= 3);
  CHECK(fs::exists(box.dir.file("ckpt/" + tag + "/manifest.json")));
  const RunResult r = launch_dsworker_ok(
      box, 2, training_args(step + 3, "zero3.json", 2) + std::vector<std::string>{"--resume", "ckpt", "--save_dir", "ckpt", "--save_interval", "1"});
  CHECK(r.err.find("resumed from ckpt/" + tag + " at step " + std::to_string(step)) != std::string::npos);
  CHECK(r.err.find("done: 3 steps") != std::string::npos);
  CHECK(latest_tag(box.dir.file("ckpt")) == "global_step" + std::to_string(step + 3));
  for (int s = step + 1; s <= step + 3; ++s)  // saved again over whatever the kill left half-written
    CHECK(fs::exists(box.dir.file("ckpt/global_step" + std::to_string(s) + "/manifest.json")));
  const Weights weights = export_weights(box, box.dir.file("ckpt"), "final_hf");
  CHECK(!weights.empty());
}

TEST_CASE("a new job saving into a save_dir that holds an earlier job's checkpoints of the same steps replaces them, so latest and the export are the new job's model") {
  Sandbox box;
  launch_dsworker_ok(box, 2, training_args(4, "zero2.json", 2) + std::vector<std::string>{"--save_dir", "ckpt", "--save_interval", "2"});
  // Another model (as `scripts/run.sh --model ...` after a first run.sh): same tags, other tensors.
  const RunResult r = launch_dsworker_ok(
      box, 2,
      std::vector<std::string>{"--model", "n_layer=1,n_head=2,n_embd=48,seq_len=32,vocab_size=256", "--seq_len", "16", "--threads", "1",
                               "--steps", "4", "--micro_batch", "2", "--save_dir", "ckpt", "--save_interval", "2"});
  CHECK(r.err.find("checkpoint global_step4 saved to ckpt (replacing an earlier one of that tag)") != std::string::npos);
  CHECK(latest_tag(box.dir.file("ckpt")) == "global_step4");
  for (const std::string tag : {"global_step2", "global_step4"}) {
    INFO(tag);
    const nlohmann::json manifest = nlohmann::json::parse(slurp(box.dir.file("ckpt/" + tag + "/manifest.json")));
    CHECK(manifest.at("model").at("n_embd") == 48);
    CHECK(manifest.at("model").at("n_layer") == 1);
  }
  const Weights weights = export_weights(box, box.dir.file("ckpt"), "hf");
  REQUIRE(weights.count("transformer.wte.weight") == 1);
  CHECK(weights.at("transformer.wte.weight").size() == 256u * 48u);
  CHECK(weights.count("transformer.h.1.attn.c_attn.weight") == 0);
}
