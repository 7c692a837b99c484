#include "launch/gpus.hpp"

#include <charconv>
#include <filesystem>
#include <system_error>

#include "base/error.hpp"

namespace ds::launch {
namespace {

namespace fs = std::filesystem;

int count_entries(const std::string& dir) {
  std::error_code ec;
  int count = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) ++count;
  return count;
}

// /dev/nvidia0, /dev/nvidia1, ... but not nvidiactl, nvidia-uvm, nvidia-modeset.
int count_device_nodes(const std::string& dir) {
  std::error_code ec;
  int count = 0;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    constexpr std::string_view k_prefix = "nvidia";
    if (name.size() <= k_prefix.size() || name.compare(0, k_prefix.size(), k_prefix) != 0) continue;
    bool digits = true;
    for (size_t i = k_prefix.size(); i < name.size(); ++i) digits = digits && name[i] >= '0' && name[i] <= '9';
    if (digits) ++count;
  }
  return count;
}

}  // namespace

GpuCount count_gpus(const std::map<std::string, std::string>& env, const GpuProbePaths& paths) {
  if (auto it = env.find("DSLAUNCH_GPU_COUNT"); it != env.end()) {
    const std::string& text = it->second;
    int count = -1;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || count < 0)
      throw UsageError("DSLAUNCH_GPU_COUNT='" + text +
                       "' is not a GPU count: give a whole number >= 0, or unset it to detect the GPUs");
    return {count, "DSLAUNCH_GPU_COUNT=" + text};
  }
  if (int n = count_entries(paths.proc_gpus); n > 0) return {n, paths.proc_gpus};
  if (int n = count_device_nodes(paths.dev); n > 0) return {n, paths.dev + "/nvidia*"};
  return {0, "no NVIDIA driver found"};
}

}  // namespace ds::launch
