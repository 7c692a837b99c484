#include "mp/worker_fixtures.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/gpt_layout.hpp"
#include "zero/checkpoint.hpp"
#include "zero/safetensors.hpp"

extern char** environ;

namespace ds::test::mp {

namespace fs = std::filesystem;

std::vector<std::string> small_model_args(int steps) {
  return {"--model", k_small_model, "--seq_len", "16", "--threads", "1", "--steps", std::to_string(steps)};
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::string shipped_config(const std::string& name) { return source_dir() + "/configs/" + name; }

RunResult launch_dsworker(const Sandbox& box, int ranks, const std::vector<std::string>& worker_args,
                          std::chrono::milliseconds timeout) {
  std::vector<std::string> args = {"--num_gpus=" + std::to_string(ranks), "--master_port=0", dsworker_bin()};
  args.insert(args.end(), worker_args.begin(), worker_args.end());
  return box.run(args, {}, timeout);
}

RunResult run_hermetic(const Sandbox& box, const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       std::chrono::milliseconds timeout) {
  RunOptions options;
  options.cwd = box.dir.path();
  options.timeout = timeout;
  options.set_env = box.env_with(env);
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string name = kv.substr(0, kv.find('='));
    if (!options.set_env.count(name)) options.unset_env.push_back(name);
  }
  return run(argv, options);
}

RunResult launch_dsworker_ok(const Sandbox& box, int ranks, const std::vector<std::string>& worker_args,
                             std::chrono::milliseconds timeout) {
  RunResult r = launch_dsworker(box, ranks, worker_args, timeout);
  INFO("dslaunch with " << ranks << " rank(s), stdout:\n" << r.out << "\nstderr:\n" << r.err);
  REQUIRE(!r.timed_out);
  REQUIRE(r.exit_code == 0);
  return r;
}

Weights export_weights(const Sandbox& box, const std::string& checkpoint, const std::string& out_name) {
  const std::string out_dir = box.dir.file(out_name);
  const RunResult r = run_hermetic(box, {dsworker_bin(), "export", "--checkpoint", checkpoint, "--out", out_dir});
  INFO("dsworker export --checkpoint " << checkpoint << ": " << r.err);
  REQUIRE(r.exit_code == 0);
  zero::SafetensorsReader reader(out_dir + "/model.safetensors");
  Weights weights;
  for (const auto& t : reader.tensors()) {
    std::vector<float> values(static_cast<size_t>(t.numel));
    reader.read(t.name, TensorRef{values.data(), DType::f32, t.numel});
    weights[t.name] = std::move(values);
  }
  return weights;
}

Weights checkpoint_state(const std::string& tag_dir) {
  zero::CheckpointReader reader(tag_dir);
  const model::ModelLayout layout = model::gpt_layout(reader.model_config());
  Weights state;
  const std::pair<zero::Engine::StateTensor, const char*> tensors[] = {{zero::Engine::StateTensor::master, "master"},
                                                                        {zero::Engine::StateTensor::exp_avg, "exp_avg"},
                                                                        {zero::Engine::StateTensor::exp_avg_sq, "exp_avg_sq"}};
  for (size_t u = 0; u < layout.units.size(); ++u) {
    for (const auto& [which, suffix] : tensors) {
      std::vector<float> values(static_cast<size_t>(layout.units[u].numel));
      reader.read(static_cast<int>(u), 0, layout.units[u].numel, which, values.data());
      state[layout.units[u].name + "." + suffix] = std::move(values);
    }
  }
  return state;
}

double relative_l2(const Weights& a, const Weights& b) {
  REQUIRE(a.size() == b.size());
  double diff = 0, norm = 0;
  for (const auto& [name, values] : b) {
    INFO("tensor " << name);
    REQUIRE(a.count(name) == 1);
    const auto& other = a.at(name);
    REQUIRE(other.size() == values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      const double d = static_cast<double>(other[i]) - static_cast<double>(values[i]);
      diff += d * d;
      norm += static_cast<double>(values[i]) * static_cast<double>(values[i]);
    }
  }
  return std::sqrt(diff) / std::sqrt(norm);
}

std::vector<std::string> differing(const Weights& a, const Weights& b) {
  std::vector<std::string> names;
  for (const auto& [name, values] : b) {
    const auto it = a.find(name);
    if (it == a.end() || it->second.size() != values.size() ||
        std::memcmp(it->second.data(), values.data(), values.size() * sizeof(float)) != 0)
      names.push_back(name);
  }
  for (const auto& [name, values] : a)
    if (!b.count(name)) names.push_back(name);
  return names;
}

namespace {

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  INFO("metrics file " << path);
  REQUIRE(in.good());
  std::vector<nlohmann::json> records;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  return records;
}

}  // namespace

std::vector<nlohmann::json> read_step_metrics(const std::string& path) {
  std::vector<nlohmann::json> steps;
  for (auto& record : read_jsonl(path))
    if (record.contains("step") && !record.contains("event")) steps.push_back(std::move(record));
  return steps;
}

nlohmann::json read_done_metrics(const std::string& path) {
  nlohmann::json done;
  for (auto& record : read_jsonl(path))
    if (record.value("event", "") == "done") done = std::move(record);
  INFO("metrics file " << path);
  REQUIRE(done.is_object());
  return done;
}

namespace {

pid_t parent_of(pid_t pid) {
  // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  long ppid = -1;
  rest >> state >> ppid;
  return static_cast<pid_t>(ppid);
}

}  // namespace

std::vector<pid_t> descendants_running(pid_t ancestor, const std::string& exe_path) {
  std::error_code ec;
  const fs::path want = fs::weakly_canonical(exe_path, ec);
  std::vector<pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    std::error_code link_ec;
    const fs::path exe = fs::read_symlink(entry.path() / "exe", link_ec);
    if (link_ec || exe != want) continue;
    for (pid_t p = parent_of(pid); p > 1; p = parent_of(p)) {
      if (p == ancestor) {
        found.push_back(pid);
        break;
      }
    }
  }
  return found;
}

std::string environ_value(pid_t pid, const std::string& name) {
  const std::string text = slurp("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = name + "=";
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    if (text.compare(start, key.size(), key) == 0) return text.substr(start + key.size(), end - start - key.size());
    start = end + 1;
  }
  return "";
}

}  // namespace ds::test::mp
