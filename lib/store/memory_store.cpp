#include "store/memory_store.hpp"

#include <string>

#include "base/error.hpp"
#include "base/format.hpp"

namespace ds::store {
namespace {

std::string join_keys(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "'" : ", '") + k + "'";
  return out;
}

}  // namespace

void MemoryStore::set(const std::string& key, const std::string& value) {
  {
    std::lock_guard lock(m_mutex);
    m_data[key] = value;
  }
  m_changed.notify_all();
}

std::string MemoryStore::get(const std::string& key) {
  wait({key}, m_timeout);
  std::lock_guard lock(m_mutex);
  return m_data.at(key);
}

std::optional<std::string> MemoryStore::try_get(const std::string& key) {
  std::lock_guard lock(m_mutex);
  auto it = m_data.find(key);
  if (it == m_data.end()) return std::nullopt;
  return it->second;
}

int64_t MemoryStore::add(const std::string& key, int64_t delta) {
  int64_t value = 0;
  {
    std::lock_guard lock(m_mutex);
    auto it = m_data.find(key);
    if (it != m_data.end()) {
      try {
        value = std::stoll(it->second);
      } catch (const std::exception&) {
        throw StoreError("store key '" + key + "' holds '" + it->second + "', not an integer: add() needs a counter key");
      }
    }
    value += delta;
    m_data[key] = std::to_string(value);
  }
  m_changed.notify_all();
  return value;
}

bool MemoryStore::check(const std::vector<std::string>& keys) {
  std::lock_guard lock(m_mutex);
  for (const auto& k : keys)
    if (!m_data.count(k)) return false;
  return true;
}

void MemoryStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  std::unique_lock lock(m_mutex);
  auto all_present = [&] {
    for (const auto& k : keys)
      if (!m_data.count(k)) return false;
    return true;
  };
  if (!m_changed.wait_for(lock, timeout, all_present)) {
    std::vector<std::string> missing;
    for (const auto& k : keys)
      if (!m_data.count(k)) missing.push_back(k);
    throw RendezvousTimeout("timed out after " + format_duration(timeout) + " waiting for store keys " +
                            join_keys(missing));
  }
}

bool MemoryStore::delete_key(const std::string& key) {
  std::lock_guard lock(m_mutex);
  return m_data.erase(key) > 0;
}

}  // namespace ds::store
