// An in-process KeyValueStore: for single-process worlds (rank 0 of 1, no launcher) and for tests
// that run several ranks as threads of one process.
#pragma once

#include <condition_variable>
#include <map>
#include <mutex>

#include "store/kv_store.hpp"

namespace ds::store {

class MemoryStore final : public KeyValueStore {
 public:
  explicit MemoryStore(std::chrono::milliseconds timeout = std::chrono::seconds(300)) : m_timeout(timeout) {}

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key) override;
  std::optional<std::string> try_get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;
  bool delete_key(const std::string& key) override;
  std::chrono::milliseconds timeout() const override { return m_timeout; }

 private:
  std::chrono::milliseconds m_timeout;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::map<std::string, std::string> m_data;
};

}  // namespace ds::store
