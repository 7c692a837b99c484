#include "device/device.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace ds::device {

const char* memory_kind_name(MemoryKind kind) {
  switch (kind) {
    case MemoryKind::device: return "device";
    case MemoryKind::pinned_host: return "pinned host";
    case MemoryKind::host: return "host";
  }
  return "?";
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    reset();
    m_device = other.m_device;
    m_data = other.m_data;
    m_bytes = other.m_bytes;
    m_kind = other.m_kind;
    other.m_device = nullptr;
    other.m_data = nullptr;
    other.m_bytes = 0;
  }
  return *this;
}

void Buffer::reset() {
  if (m_data && m_device) m_device->free(m_data, m_bytes, m_kind);
  m_data = nullptr;
  m_bytes = 0;
  m_device = nullptr;
}

void Device::count_alloc(size_t bytes, MemoryKind kind) {
  const int k = static_cast<int>(kind);
  m_counters.current[k] += bytes;
  m_counters.peak[k] = std::max(m_counters.peak[k], m_counters.current[k]);
}

void Device::count_free(size_t bytes, MemoryKind kind) { m_counters.current[static_cast<int>(kind)] -= bytes; }

void Device::reset_peaks() {
  for (int k = 0; k < 3; ++k) m_counters.peak[k] = m_counters.current[k];
}

namespace {

size_t read_cgroup_limit() {
  // cgroup v2: /sys/fs/cgroup/<path>/memory.max for the cgroup in /proc/self/cgroup.
  std::ifstream cg("/proc/self/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    std::ifstream max("/sys/fs/cgroup" + line.substr(3) + "/memory.max");
    std::string value;
    if (max >> value && value != "max") {
      try {
        return static_cast<size_t>(std::stoull(value));
      } catch (...) {
      }
    }
  }
  return 0;
}

}  // namespace

MemoryInfo host_memory_info() {
  MemoryInfo info;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  size_t value = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit) {
    if (key == "MemTotal:") info.total_bytes = value * 1024;
    if (key == "MemAvailable:") info.free_bytes = value * 1024;
  }
  if (size_t limit = read_cgroup_limit(); limit && limit < info.total_bytes) {
    info.total_bytes = limit;
    info.free_bytes = std::min(info.free_bytes, limit);
  }
  return info;
}

}  // namespace ds::device
