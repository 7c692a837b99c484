// Fuzz target "options": dslaunch's command line (lib/launch/options.hpp) and the launch plan built
// from it (lib/launch/plan.hpp), on a made-up host.
//
// Input: byte 0 picks the host (bits 0-1: 0, 2, 4 or 8 GPUs; bit 2: CUDA_VISIBLE_DEVICES=1,3;
// bit 3: CUDA_VISIBLE_DEVICES empty; bit 4: KMP_AFFINITY set; bit 5: OMP_NUM_THREADS set); the rest
// is argv without argv[0], words separated by NUL bytes (argv words cannot hold one).
//
// The host lives in a temporary directory: train.py, bin/python3 and bin/trainer (executables;
// PATH is that bin/ then /usr/bin:/bin), and hostfiles under hostfiles/. To keep runs hermetic, -H
// NAME reads hostfiles/NAME with every '/' of NAME turned into '_' (existing: "one" = localhost
// slots=4, "two" = localhost and worker-1, "bad" = a malformed line, "dup" = a duplicate host);
// without -H the default hostfile does not exist (a run on this node only).
//
// Allowed: ds::UsageError, ds::HostfileError, ds::ResourceError, from parse_options or make_plan.
// Properties of a plan that was made: one node, world size = its slot count, ranks 0..N-1, slots
// ascending and unique (below the GPU count on cuda), one core list per rank when binding, and
// plan_to_json gives JSON that parses.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz_target.hpp"
#include "launch/host.hpp"
#include "launch/options.hpp"
#include "launch/plan.hpp"
#include "base/error.hpp"

namespace ds::fuzz {
namespace {

namespace fs = std::filesystem;

// The temporary directory of the made-up host, created once and removed at exit.
class FakeHostDir {
 public:
  FakeHostDir() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/ds-options-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("options fuzz: cannot create a temporary directory");
    m_path = pattern;
    write("train.py", "print('hi')\n");
    write("bin/python3", "#!/bin/sh\n", 0755);
    write("bin/trainer", "#!/bin/sh\n", 0755);
    write("hostfiles/one", "localhost slots=4\n");
    write("hostfiles/two", "localhost slots=2\nworker-1 slots=2\n");
    write("hostfiles/bad", "localhost slots=4\nworker-1 slots=x\n");
    write("hostfiles/dup", "localhost slots=1\nlocalhost slots=2\n");
  }
  ~FakeHostDir() {
    std::error_code ec;
    fs::remove_all(m_path, ec);
  }
  const std::string& path() const { return m_path; }

 private:
  void write(const std::string& name, const std::string& content, mode_t mode = 0644) const {
    const fs::path file = fs::path(m_path) / name;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << content;
    ::chmod(file.c_str(), mode);
  }

  std::string m_path;
};

const FakeHostDir& host_dir() {
  static const FakeHostDir dir;
  return dir;
}

launch::HostFacts facts_for(uint8_t mode) {
  const std::string& dir = host_dir().path();
  launch::HostFacts f;
  f.env = {{"PATH", dir + "/bin:/usr/bin:/bin"}, {"HOME", "/home/user"}};
  if (mode & 0x04) f.env["CUDA_VISIBLE_DEVICES"] = "1,3";
  if (mode & 0x08) f.env["CUDA_VISIBLE_DEVICES"] = "";
  if (mode & 0x10) f.env["KMP_AFFINITY"] = "compact";
  if (mode & 0x20) f.env["OMP_NUM_THREADS"] = "3";
  f.cwd = dir;
  f.hostname = "testhost";
  f.addresses = {"10.0.0.5", "fe80::1"};
  const int gpus = (mode & 0x03) == 0 ? 0 : 1 << (mode & 0x03);
  f.gpus = {gpus, gpus > 0 ? "fuzz GPUs" : "no NVIDIA driver found"};
  f.allowed_cpus = {0, 1, 2, 3, 4, 5, 6, 7};
  f.physical_cores = {0, 1, 2, 3};
  f.pid = 4242;
  f.uid = 1000;
  return f;
}

std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> words;
  if (text.empty()) return words;
  while (true) {
    const size_t nul = text.find('\0');
    words.emplace_back(text.substr(0, nul));
    if (nul == std::string_view::npos) return words;
    text.remove_prefix(nul + 1);
  }
}

void check_plan(const launch::LaunchPlan& plan, const launch::HostFacts& facts) {
  DS_FUZZ_REQUIRE(plan.nodes.size() == 1 && plan.local_node == 0, "a plan for more than one node");
  const launch::NodePlan& node = plan.node();
  DS_FUZZ_REQUIRE(plan.world_size == static_cast<int>(node.slots.size()) && plan.world_size >= 1,
                  "world size " + std::to_string(plan.world_size) + " for " + std::to_string(node.slots.size()) + " slots");
  DS_FUZZ_REQUIRE(node.ranks.size() == node.slots.size(), "ranks and slots differ in number");
  for (size_t i = 0; i < node.ranks.size(); ++i) DS_FUZZ_REQUIRE(node.ranks[i] == static_cast<int>(i), "ranks are not 0..N-1");
  for (size_t i = 1; i < node.slots.size(); ++i) DS_FUZZ_REQUIRE(node.slots[i - 1] < node.slots[i], "slots not ascending");
  if (plan.device == launch::DeviceKind::cuda)
    for (int slot : node.slots) DS_FUZZ_REQUIRE(slot >= 0 && slot < facts.gpus.count, "GPU slot " + std::to_string(slot));
  if (!plan.cpu_cores.empty()) {
    DS_FUZZ_REQUIRE(plan.cpu_cores.size() == node.slots.size(), "core lists and ranks differ in number");
    for (const auto& cores : plan.cpu_cores) DS_FUZZ_REQUIRE(!cores.empty(), "a rank without cores");
  }
  DS_FUZZ_REQUIRE(!plan.program.argv(0).empty(), "an empty worker command");
  const std::string json = launch::plan_to_json(plan);
  DS_FUZZ_REQUIRE(nlohmann::json::accept(json), "plan_to_json gave text that is not JSON: " + json.substr(0, 200));
}

}  // namespace

void options_one_input(std::string_view input) {
  if (input.empty()) return;
  const auto mode = static_cast<uint8_t>(input[0]);
  const std::vector<std::string> words = split_words(input.substr(1));
  try {
    launch::LaunchOptions options = launch::parse_options(words);
    if (options.request != launch::Request::launch) {
      DS_FUZZ_REQUIRE(!options.request_text.empty(), "--help/--version with nothing to print");
      return;
    }
    const std::string hostfiles = host_dir().path() + "/hostfiles/";
    if (options.hostfile_given) {
      std::string name = options.hostfile;
      std::replace(name.begin(), name.end(), '/', '_');
      options.hostfile = hostfiles + name;
    } else {
      options.hostfile = hostfiles + "default-absent";
    }
    const launch::HostFacts facts = facts_for(mode);
    check_plan(launch::make_plan(options, facts), facts);
  } catch (const UsageError&) {
  } catch (const HostfileError&) {
  } catch (const ResourceError&) {
  }
}

}  // namespace ds::fuzz

DS_FUZZ_TARGET(options, ds::fuzz::options_one_input)
