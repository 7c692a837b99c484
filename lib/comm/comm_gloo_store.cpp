#include "comm/comm_gloo_store.hpp"

namespace ds::comm {

GlooStoreAdapter::GlooStoreAdapter(store::KeyValueStore& store, std::string prefix, std::chrono::milliseconds timeout)
    : m_store(store), m_prefix(std::move(prefix)), m_timeout(timeout) {}

void GlooStoreAdapter::set(const std::string& key, const std::vector<char>& data) {
  // Values are bytes (Gloo stores binary addresses); std::string carries them unchanged.
  m_store.set(m_prefix + key, std::string(data.begin(), data.end()));
}

std::vector<char> GlooStoreAdapter::get(const std::string& key) {
  const std::string full = m_prefix + key;
  m_store.wait({full}, m_timeout);
  const std::string value = m_store.get(full);
  return {value.begin(), value.end()};
}

void GlooStoreAdapter::wait(const std::vector<std::string>& keys) { m_store.wait(full_keys(keys), m_timeout); }

void GlooStoreAdapter::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  m_store.wait(full_keys(keys), timeout);
}

std::vector<std::string> GlooStoreAdapter::full_keys(const std::vector<std::string>& keys) const {
  std::vector<std::string> out;
  out.reserve(keys.size());
  for (const auto& k : keys) out.push_back(m_prefix + k);
  return out;
}

}  // namespace ds::comm
