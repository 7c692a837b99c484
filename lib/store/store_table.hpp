// The store server's data: keys with binary values, and named FIFO queues. Every method takes an
// internal mutex, so the io thread and the hosting launcher's threads may call them at once.
// Waking waiters is the server's business (store_server.cpp), not this table's.
//
// Stored bytes are counted (a key's name plus its value; each queued element its value plus its
// queue's name) and capped at max_stored_bytes: a write under Quota::enforced that would pass the
// cap throws CapExceeded(stored_bytes) and changes nothing. Quota::exempt (the launcher's own
// writes) is counted but never refused.
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ds::store {

// Whether a caller sees keys in the protected namespaces (store_namespaces.hpp) in counts and
// listings.
enum class ProtectedKeys { hidden, visible };
// Whether a write may be refused for passing max_stored_bytes.
enum class Quota { enforced, exempt };

class StoreTable {
 public:
  explicit StoreTable(std::size_t max_stored_bytes = std::numeric_limits<std::size_t>::max())
      : m_max_bytes(max_stored_bytes) {}

  void set(const std::string& key, std::string value, Quota quota);
  // MULTI_SET: all of them or (when the total would pass the cap) none.
  void set_many(const std::vector<std::string>& keys, std::vector<std::string>& values, Quota quota);
  std::optional<std::string> get(const std::string& key) const;
  // Torch's COMPARE_SET (store_server.hpp); returns the reply.
  std::string compare_set(const std::string& key, const std::string& expected, std::string desired, Quota quota);
  // Adds delta to the decimal integer at key (0 when missing) and returns the sum. Throws
  // ProtocolViolation if the value is not decimal text or the sum overflows int64.
  int64_t add(const std::string& key, int64_t delta, Quota quota);
  void append(const std::string& key, const std::string& bytes, Quota quota);
  bool erase(const std::string& key);
  // A key is present if it is set or names a non-empty queue (as torch's CHECK/WAIT).
  bool present(const std::string& key) const;
  bool all_present(const std::vector<std::string>& keys) const;
  std::vector<std::string> missing(const std::vector<std::string>& keys) const;
  int64_t size(ProtectedKeys protected_keys) const;
  std::vector<std::string> keys(ProtectedKeys protected_keys) const;

  // Reply sizes, computed without copying anything, so a server can refuse before building:
  // the sum over keys of 8 + the value's size (0 when missing), as MULTI_GET frames it; and
  // 8 + the sum over the visible keys of 8 + the key's size, as LIST_KEYS frames it.
  std::size_t multi_get_reply_bytes(const std::vector<std::string>& keys) const;
  std::size_t list_keys_reply_bytes(ProtectedKeys protected_keys) const;
  std::size_t value_size(const std::string& key) const;  // 0 when missing

  void queue_push(const std::string& queue, std::string value, Quota quota);
  // The queue's length before the pop, and the popped value when it was not empty.
  std::pair<int64_t, std::optional<std::string>> queue_pop(const std::string& queue);
  int64_t queue_len(const std::string& queue) const;

  std::size_t stored_bytes() const;
  std::size_t max_stored_bytes() const { return m_max_bytes; }

 private:
  void put_locked(const std::string& key, std::string value, Quota quota);
  // Throws CapExceeded unless stored - removed + added fits (or quota is exempt).
  void reserve_locked(std::size_t removed, std::size_t added, Quota quota, const std::string& key) const;
  bool present_locked(const std::string& key) const;

  const std::size_t m_max_bytes;
  mutable std::mutex m_mutex;
  std::unordered_map<std::string, std::string> m_values;
  std::unordered_map<std::string, std::deque<std::string>> m_queues;
  int64_t m_protected_count = 0;       // keys in m_values in a protected namespace
  std::size_t m_key_bytes = 0;         // total size of the keys in m_values
  std::size_t m_protected_key_bytes = 0;
  std::size_t m_stored_bytes = 0;
};

}  // namespace ds::store
