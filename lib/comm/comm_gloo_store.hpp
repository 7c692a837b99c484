// Adapts our KeyValueStore to the store Gloo's rendezvous talks to (gloo::rendezvous::Store), with
// every key under a prefix and every wait bounded by the communicator's timeout. Internal to
// GlooComm.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <gloo/rendezvous/store.h>

#include "store/kv_store.hpp"

namespace ds::comm {

class GlooStoreAdapter final : public gloo::rendezvous::Store {
 public:
  // Keys become prefix + key. store must outlive the adapter.
  GlooStoreAdapter(store::KeyValueStore& store, std::string prefix, std::chrono::milliseconds timeout);

  void set(const std::string& key, const std::vector<char>& data) override;
  // Waits up to the timeout for the key; throws RendezvousTimeout naming it.
  std::vector<char> get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;

 private:
  std::vector<std::string> full_keys(const std::vector<std::string>& keys) const;

  store::KeyValueStore& m_store;
  std::string m_prefix;
  std::chrono::milliseconds m_timeout;
};

}  // namespace ds::comm
