// Shared pieces of dsworker's end-to-end tests (tests/mp/worker_*_test.cpp): training jobs started
// as a user starts them, `dslaunch --num_gpus=N --master_port=0 dsworker ...` on CPU ranks, in a
// Sandbox (launch_fixtures.hpp: temp dir as cwd, hermetic environment); what they leave behind read
// back through the real `dsworker export` (Hugging Face safetensors) or zero::CheckpointReader, and
// their metrics JSONL.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mp/launch_fixtures.hpp"

namespace ds::test::mp {

// A GPT small enough that a step takes milliseconds on one thread, with units that do not divide
// evenly among 2, 3 or 4 ranks (so partition padding is exercised).
inline constexpr const char* k_small_model = "n_layer=2,n_head=2,n_embd=32,seq_len=32,vocab_size=256";

// dsworker's training flags for the small model: --model, --seq_len 16, --threads 1, --steps N.
// Batch and precision flags are left to each test.
std::vector<std::string> small_model_args(int steps);

// a followed by b (argument lists).
std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b);

// source_dir()/configs/<name>
std::string shipped_config(const std::string& name);

// `dslaunch --num_gpus=<ranks> --master_port=0 dsworker <worker_args...>` in the sandbox's dir.
RunResult launch_dsworker(const Sandbox& box, int ranks, const std::vector<std::string>& worker_args,
                          std::chrono::milliseconds timeout = 120s);

// Any program (argv[0] a path) in the sandbox's dir with the environment dslaunch gets there
// (hermetic_env(): no launcher variables, so a dsworker started this way is a lone rank).
RunResult run_hermetic(const Sandbox& box, const std::vector<std::string>& argv,
                       const std::map<std::string, std::string>& env = {}, std::chrono::milliseconds timeout = 120s);

// A run that must succeed: fails the test (REQUIRE) with its output when dslaunch exits non-zero.
RunResult launch_dsworker_ok(const Sandbox& box, int ranks, const std::vector<std::string>& worker_args,
                             std::chrono::milliseconds timeout = 120s);

// Tensor name -> fp32 values.
using Weights = std::map<std::string, std::vector<float>>;

// Runs `dsworker export --checkpoint <checkpoint> --out <box>/<out_name>` (fp32) and reads every
// tensor of model.safetensors back with zero::SafetensorsReader. REQUIREs success.
Weights export_weights(const Sandbox& box, const std::string& checkpoint, const std::string& out_name);

// Every unit's fp32 master weights and Adam moments of a checkpoint tag directory, read through
// zero::CheckpointReader: "<unit>.master", "<unit>.exp_avg", "<unit>.exp_avg_sq".
Weights checkpoint_state(const std::string& tag_dir);

// ||a - b|| / ||b|| over all tensors together; the names and sizes must match (REQUIRE).
double relative_l2(const Weights& a, const Weights& b);
// The names of the tensors that differ in at least one element (bitwise), for messages.
std::vector<std::string> differing(const Weights& a, const Weights& b);

// The per-step records of a metrics JSONL file (records with "step"; summaries with "event" left out).
std::vector<nlohmann::json> read_step_metrics(const std::string& path);
// The last record with "event": "done" of a metrics file; REQUIREs one.
nlohmann::json read_done_metrics(const std::string& path);

// Pids of the processes below `ancestor` (children, grandchildren...) whose /proc/<pid>/exe is
// `exe_path`, found through /proc/<pid>/stat parent links.
std::vector<pid_t> descendants_running(pid_t ancestor, const std::string& exe_path);
// The value of NAME in /proc/<pid>/environ, empty when absent or unreadable.
std::string environ_value(pid_t pid, const std::string& name);

}  // namespace ds::test::mp
