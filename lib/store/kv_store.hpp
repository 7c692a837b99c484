// The key-value store interface every rank uses to rendezvous: exchange addresses, publish the
// config, meet at barriers. Implemented by the TCP store client (store_client.hpp) and, for
// single-process worlds and in-process tests, by MemoryStore (memory_store.hpp).
// All methods may be called from several threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ds::store {

class KeyValueStore {
 public:
  virtual ~KeyValueStore() = default;

  // Sets key to value, replacing any old value; wakes waiters. Does not block on other ranks.
  virtual void set(const std::string& key, const std::string& value) = 0;
  // Waits until key exists (up to timeout()), then returns its value.
  // Throws RendezvousTimeout naming the key when it does not appear in time.
  virtual std::string get(const std::string& key) = 0;
  // Returns the value if the key exists now; never waits.
  virtual std::optional<std::string> try_get(const std::string& key) = 0;
  // Atomically adds delta to the integer stored (as decimal text) at key, creating it at 0;
  // returns the new value.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  // True if every key exists now; never waits.
  virtual bool check(const std::vector<std::string>& keys) = 0;
  // Waits until every key exists; throws RendezvousTimeout naming the missing keys after timeout.
  virtual void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) = 0;
  // Removes key; returns whether it existed.
  virtual bool delete_key(const std::string& key) = 0;

  // Default timeout of get() and barrier waits.
  virtual std::chrono::milliseconds timeout() const = 0;
};

}  // namespace ds::store
