// A KeyValueStore on a shared directory, for tests that run ranks as separate processes (fork)
// before the TCP store exists on their side. One file per key, written atomically (temp + rename);
// add() serialises through flock on a lock file; waits poll every millisecond.
#pragma once

#include <string>

#include "store/kv_store.hpp"

namespace ds::test {

class FileStore final : public store::KeyValueStore {
 public:
  // dir must exist and be shared by every process using the store.
  FileStore(std::string dir, std::chrono::milliseconds timeout);

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key) override;
  std::optional<std::string> try_get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;
  bool delete_key(const std::string& key) override;
  std::chrono::milliseconds timeout() const override { return m_timeout; }

 private:
  std::string path(const std::string& key) const;

  std::string m_dir;
  std::chrono::milliseconds m_timeout;
};

}  // namespace ds::test
