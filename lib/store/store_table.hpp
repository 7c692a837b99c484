// The store server's data: keys with binary values, and named FIFO queues. Every method takes an
// internal mutex, so the io thread and the hosting launcher's threads may call them at once.
// Waking waiters is the server's business (store_server.cpp), not this table's.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ds::store {

// Whether a caller sees keys under k_protected_key_prefix in counts and listings.
enum class ProtectedKeys { hidden, visible };

class StoreTable {
 public:
  void set(const std::string& key, std::string value);
  std::optional<std::string> get(const std::string& key) const;
  // Torch's COMPARE_SET (store_server.hpp); returns the reply.
  std::string compare_set(const std::string& key, const std::string& expected, std::string desired);
  // Adds delta to the decimal integer at key (0 when missing) and returns the sum. Throws
  // ProtocolViolation if the value is not decimal text or the sum overflows int64.
  int64_t add(const std::string& key, int64_t delta);
  void append(const std::string& key, const std::string& bytes);
  bool erase(const std::string& key);
  // A key is present if it is set or names a non-empty queue (as torch's CHECK/WAIT).
  bool present(const std::string& key) const;
  bool all_present(const std::vector<std::string>& keys) const;
  std::vector<std::string> missing(const std::vector<std::string>& keys) const;
  int64_t size(ProtectedKeys protected_keys) const;
  std::vector<std::string> keys(ProtectedKeys protected_keys) const;

  void queue_push(const std::string& queue, std::string value);
  // The queue's length before the pop, and the popped value when it was not empty.
  std::pair<int64_t, std::optional<std::string>> queue_pop(const std::string& queue);
  int64_t queue_len(const std::string& queue) const;

 private:
  void put_locked(const std::string& key, std::string value);
  bool present_locked(const std::string& key) const;

  mutable std::mutex m_mutex;
  std::unordered_map<std::string, std::string> m_values;
  std::unordered_map<std::string, std::deque<std::string>> m_queues;
  int64_t m_protected_count = 0;  // keys in m_values under k_protected_key_prefix
};

}  // namespace ds::store
