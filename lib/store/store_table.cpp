#include "store/store_table.hpp"

#include <cctype>
#include <limits>
#include <string_view>

#include "store/store_limits.hpp"
#include "store/store_protocol.hpp"

namespace ds::store {
namespace {

// Reads the value the way torch's std::stoll does: leading white space, an optional sign, at
// least one digit; anything after the digits is ignored ("12abc" is 12).
int64_t parse_counter(const std::string& key, const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  bool negative = false;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) negative = text[i++] == '-';
  const std::size_t first_digit = i;
  // Accumulate as a negative number so that INT64_MIN parses.
  int64_t value = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const int digit = text[i] - '0';
    if (value < (std::numeric_limits<int64_t>::min() + digit) / 10)
      throw ProtocolViolation("ADD on key '" + key + "': its value '" + text + "' overflows a 64-bit integer");
    value = value * 10 - digit;
  }
  if (i == first_digit)
    throw ProtocolViolation("ADD on key '" + key + "': its value is not a decimal integer (" +
                            std::to_string(text.size()) + " bytes starting '" + text.substr(0, 32) + "')");
  if (!negative) {
    if (value == std::numeric_limits<int64_t>::min())
      throw ProtocolViolation("ADD on key '" + key + "': its value '" + text + "' overflows a 64-bit integer");
    value = -value;
  }
  return value;
}

}  // namespace

void StoreTable::reserve_locked(std::size_t removed, std::size_t added, Quota quota, const std::string& key) const {
  const std::size_t after = m_stored_bytes - removed + added;  // removed <= m_stored_bytes
  if (quota == Quota::exempt || added <= removed || after <= m_max_bytes) return;
  throw CapExceeded(StoreCap::stored_bytes, "storing " + std::to_string(added) + " bytes at key '" + key.substr(0, 128) +
                                                "' would make " + std::to_string(after) + " bytes stored, over max_stored_bytes " +
                                                std::to_string(m_max_bytes));
}

void StoreTable::put_locked(const std::string& key, std::string value, Quota quota) {
  auto it = m_values.find(key);
  if (it == m_values.end()) {
    const std::size_t bytes = key.size() + value.size();
    reserve_locked(0, bytes, quota, key);
    m_values.emplace(key, std::move(value));
    m_stored_bytes += bytes;
    m_key_bytes += key.size();
    if (is_protected_key(key)) {
      ++m_protected_count;
      m_protected_key_bytes += key.size();
    }
    return;
  }
  reserve_locked(it->second.size(), value.size(), quota, key);
  m_stored_bytes = m_stored_bytes - it->second.size() + value.size();
  it->second = std::move(value);
}

bool StoreTable::present_locked(const std::string& key) const {
  if (m_values.count(key)) return true;
  auto q = m_queues.find(key);
  return q != m_queues.end() && !q->second.empty();
}

void StoreTable::set(const std::string& key, std::string value, Quota quota) {
  std::lock_guard lock(m_mutex);
  put_locked(key, std::move(value), quota);
}

void StoreTable::set_many(const std::vector<std::string>& keys, std::vector<std::string>& values, Quota quota) {
  std::lock_guard lock(m_mutex);
  if (quota == Quota::enforced) {
    // The size after all the writes, a key named twice counted by its last value.
    std::unordered_map<std::string_view, std::size_t> after;  // key -> its bytes after the writes
    for (std::size_t i = 0; i < keys.size(); ++i) after[keys[i]] = keys[i].size() + values[i].size();
    std::size_t removed = 0, added = 0;
    for (const auto& [key, bytes] : after) {
      added += bytes;
      auto it = m_values.find(std::string(key));
      if (it != m_values.end()) removed += key.size() + it->second.size();
    }
    reserve_locked(removed, added, quota, keys.empty() ? std::string() : keys.front());
  }
  for (std::size_t i = 0; i < keys.size(); ++i) put_locked(keys[i], std::move(values[i]), Quota::exempt);
}

std::optional<std::string> StoreTable::get(const std::string& key) const {
  std::lock_guard lock(m_mutex);
  auto it = m_values.find(key);
  if (it == m_values.end()) return std::nullopt;
  return it->second;
}

std::string StoreTable::compare_set(const std::string& key, const std::string& expected, std::string desired, Quota quota) {
  std::lock_guard lock(m_mutex);
  auto it = m_values.find(key);
  if (it == m_values.end()) {
    if (!expected.empty()) return expected;  // torch's quirk: nothing stored, `expected` replied
    put_locked(key, desired, quota);
    return desired;
  }
  if (it->second == expected) put_locked(key, std::move(desired), quota);
  return m_values.at(key);
}

int64_t StoreTable::add(const std::string& key, int64_t delta, Quota quota) {
  std::lock_guard lock(m_mutex);
  int64_t value = 0;
  auto it = m_values.find(key);
  if (it != m_values.end()) value = parse_counter(key, it->second);
  int64_t sum = 0;
  if (__builtin_add_overflow(value, delta, &sum))
    throw ProtocolViolation("ADD of " + std::to_string(delta) + " to key '" + key + "' (" + std::to_string(value) +
                            ") overflows a 64-bit integer");
  put_locked(key, std::to_string(sum), quota);
  return sum;
}

void StoreTable::append(const std::string& key, const std::string& bytes, Quota quota) {
  std::lock_guard lock(m_mutex);
  auto it = m_values.find(key);
  if (it == m_values.end()) {
    put_locked(key, bytes, quota);
    return;
  }
  reserve_locked(0, bytes.size(), quota, key);
  it->second += bytes;
  m_stored_bytes += bytes.size();
}

bool StoreTable::erase(const std::string& key) {
  std::lock_guard lock(m_mutex);
  auto it = m_values.find(key);
  if (it == m_values.end()) return false;
  m_stored_bytes -= key.size() + it->second.size();
  m_key_bytes -= key.size();
  if (is_protected_key(key)) {
    --m_protected_count;
    m_protected_key_bytes -= key.size();
  }
  m_values.erase(it);
  return true;
}

bool StoreTable::present(const std::string& key) const {
  std::lock_guard lock(m_mutex);
  return present_locked(key);
}

bool StoreTable::all_present(const std::vector<std::string>& keys) const {
  std::lock_guard lock(m_mutex);
  for (const auto& key : keys)
    if (!present_locked(key)) return false;
  return true;
}

std::vector<std::string> StoreTable::missing(const std::vector<std::string>& keys) const {
  std::lock_guard lock(m_mutex);
  std::vector<std::string> out;
  for (const auto& key : keys)
    if (!present_locked(key)) out.push_back(key);
  return out;
}

int64_t StoreTable::size(ProtectedKeys protected_keys) const {
  std::lock_guard lock(m_mutex);
  const auto total = static_cast<int64_t>(m_values.size());
  return protected_keys == ProtectedKeys::visible ? total : total - m_protected_count;
}

std::vector<std::string> StoreTable::keys(ProtectedKeys protected_keys) const {
  std::lock_guard lock(m_mutex);
  std::vector<std::string> out;
  out.reserve(m_values.size());
  for (const auto& [key, value] : m_values)
    if (protected_keys == ProtectedKeys::visible || !is_protected_key(key)) out.push_back(key);
  return out;
}

void StoreTable::queue_push(const std::string& queue, std::string value, Quota quota) {
  std::lock_guard lock(m_mutex);
  const std::size_t bytes = queue.size() + value.size();
  reserve_locked(0, bytes, quota, queue);
  m_queues[queue].push_back(std::move(value));
  m_stored_bytes += bytes;
}

std::pair<int64_t, std::optional<std::string>> StoreTable::queue_pop(const std::string& queue) {
  std::lock_guard lock(m_mutex);
  auto it = m_queues.find(queue);
  if (it == m_queues.end() || it->second.empty()) return {0, std::nullopt};
  const auto length = static_cast<int64_t>(it->second.size());
  std::string value = std::move(it->second.front());
  it->second.pop_front();
  m_stored_bytes -= queue.size() + value.size();
  if (it->second.empty()) m_queues.erase(it);
  return {length, std::move(value)};
}

std::size_t StoreTable::multi_get_reply_bytes(const std::vector<std::string>& keys) const {
  std::lock_guard lock(m_mutex);
  std::size_t total = 0;
  for (const auto& key : keys) {
    auto it = m_values.find(key);
    total += 8 + (it == m_values.end() ? 0 : it->second.size());  // cannot overflow: 128 Ki keys x stored bytes
  }
  return total;
}

std::size_t StoreTable::list_keys_reply_bytes(ProtectedKeys protected_keys) const {
  std::lock_guard lock(m_mutex);
  const bool all = protected_keys == ProtectedKeys::visible;
  const std::size_t count = m_values.size() - (all ? 0 : static_cast<std::size_t>(m_protected_count));
  const std::size_t key_bytes = m_key_bytes - (all ? 0 : m_protected_key_bytes);
  return 8 + 8 * count + key_bytes;
}

std::size_t StoreTable::value_size(const std::string& key) const {
  std::lock_guard lock(m_mutex);
  auto it = m_values.find(key);
  return it == m_values.end() ? 0 : it->second.size();
}

std::size_t StoreTable::stored_bytes() const {
  std::lock_guard lock(m_mutex);
  return m_stored_bytes;
}

int64_t StoreTable::queue_len(const std::string& queue) const {
  std::lock_guard lock(m_mutex);
  auto it = m_queues.find(queue);
  return it == m_queues.end() ? 0 : static_cast<int64_t>(it->second.size());
}

}  // namespace ds::store
