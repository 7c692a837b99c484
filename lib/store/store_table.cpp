#include "store/store_table.hpp"

#include <cctype>
#include <limits>

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

void StoreTable::put_locked(const std::string& key, std::string value) {
  auto [it, inserted] = m_values.try_emplace(key);
  if (inserted && is_protected_key(key)) ++m_protected_count;
  it->second = std::move(value);
}

bool StoreTable::present_locked(const std::string& key) const {
  if (m_values.count(key)) return true;
  auto q = m_queues.find(key);
  return q != m_queues.end() && !q->second.empty();
}

void StoreTable::set(const std::string& key, std::string value) {
  std::lock_guard lock(m_mutex);
  put_locked(key, std::move(value));
}

std::optional<std::string> StoreTable::get(const std::string& key) const {
  std::lock_guard lock(m_mutex);
  auto it = m_values.find(key);
  if (it == m_values.end()) return std::nullopt;
  return it->second;
}

std::string StoreTable::compare_set(const std::string& key, const std::string& expected, std::string desired) {
  std::lock_guard lock(m_mutex);
  auto it = m_values.find(key);
  if (it == m_values.end()) {
    if (!expected.empty()) return expected;  // torch's quirk: nothing stored, `expected` replied
    put_locked(key, desired);
    return desired;
  }
  if (it->second == expected) it->second = std::move(desired);
  return it->second;
}

int64_t StoreTable::add(const std::string& key, int64_t delta) {
  std::lock_guard lock(m_mutex);
  int64_t value = 0;
  auto it = m_values.find(key);
  if (it != m_values.end()) value = parse_counter(key, it->second);
  int64_t sum = 0;
  if (__builtin_add_overflow(value, delta, &sum))
    throw ProtocolViolation("ADD of " + std::to_string(delta) + " to key '" + key + "' (" + std::to_string(value) +
                            ") overflows a 64-bit integer");
  put_locked(key, std::to_string(sum));
  return sum;
}

void StoreTable::append(const std::string& key, const std::string& bytes) {
  std::lock_guard lock(m_mutex);
  auto it = m_values.find(key);
  if (it == m_values.end())
    put_locked(key, bytes);
  else
    it->second += bytes;
}

bool StoreTable::erase(const std::string& key) {
  std::lock_guard lock(m_mutex);
  if (m_values.erase(key) == 0) return false;
  if (is_protected_key(key)) --m_protected_count;
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

void StoreTable::queue_push(const std::string& queue, std::string value) {
  std::lock_guard lock(m_mutex);
  m_queues[queue].push_back(std::move(value));
}

std::pair<int64_t, std::optional<std::string>> StoreTable::queue_pop(const std::string& queue) {
  std::lock_guard lock(m_mutex);
  auto it = m_queues.find(queue);
  if (it == m_queues.end() || it->second.empty()) return {0, std::nullopt};
  const auto length = static_cast<int64_t>(it->second.size());
  std::string value = std::move(it->second.front());
  it->second.pop_front();
  if (it->second.empty()) m_queues.erase(it);
  return {length, std::move(value)};
}

int64_t StoreTable::queue_len(const std::string& queue) const {
  std::lock_guard lock(m_mutex);
  auto it = m_queues.find(queue);
  return it == m_queues.end() ? 0 : static_cast<int64_t>(it->second.size());
}

}  // namespace ds::store
