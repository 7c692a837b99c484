#include "store/request_parser.hpp"

#include <algorithm>
#include <cstring>

#include "store/store_limits.hpp"

namespace ds::store {

std::size_t RequestParser::feed(std::string_view data) {
  std::size_t used = 0;
  while (used < data.size() && !complete()) {
    if (m_request_bytes == 0) ++m_requests_started;
    const std::size_t n = static_cast<std::size_t>(std::min<uint64_t>(m_need, data.size() - used));
    if (m_in_payload) {
      m_target->append(data.data() + used, n);
    } else {
      std::memcpy(m_scratch + m_scratch_size, data.data() + used, n);  // n <= 8 - m_scratch_size
      m_scratch_size += static_cast<unsigned>(n);
    }
    used += n;
    m_need -= n;
    m_request_bytes += n;
    m_bytes_examined += n;
    if (m_need > 0) continue;
    const bool string_field = m_field == Field::key || m_field == Field::value || m_field == Field::proof;
    if (string_field && !m_in_payload)
      length_arrived();
    else
      field_finished();
  }
  return used;
}

void RequestParser::next() {
  m_request.type = QueryType::validate;
  m_request.keys.clear();
  m_request.values.clear();
  m_request.number = 0;
  m_request.delta = 0;
  m_count = 0;
  m_request_bytes = 0;
  begin(Field::type);
}

void RequestParser::begin(Field field) {
  m_field = field;
  m_in_payload = false;
  m_target = nullptr;
  m_scratch_size = 0;
  switch (field) {
    case Field::type: m_need = 1; break;
    case Field::number: m_need = 4; break;
    case Field::done: m_need = 0; break;
    default: m_need = 8; break;  // delta, count, and every string's length
  }
}

uint64_t RequestParser::scratch_u64() const {
  uint64_t value = 0;
  for (unsigned i = 0; i < m_scratch_size; ++i) value |= uint64_t(m_scratch[i]) << (8 * i);
  return value;
}

void RequestParser::length_arrived() {
  const uint64_t size = scratch_u64();
  std::size_t max_bytes = k_max_key_bytes;
  const char* what = "key";
  if (m_field == Field::value) {
    max_bytes = k_max_value_bytes;
    what = "value";
  } else if (m_field == Field::proof) {
    max_bytes = k_auth_proof_bytes;
    what = "authentication proof";
  }
  if (size > max_bytes)
    throw ProtocolViolation(std::string(what) + " of " + std::to_string(size) + " bytes is over the limit of " +
                            std::to_string(max_bytes) + " bytes");
  if (m_request_bytes + size > m_max_request_bytes)
    throw CapExceeded(StoreCap::request_bytes, "request of more than " + std::to_string(m_max_request_bytes) +
                                                   " bytes is over the limit");
  auto& list = m_field == Field::key ? m_request.keys : m_request.values;
  m_target = &list.emplace_back();
  m_in_payload = true;
  m_need = size;
  if (size == 0) field_finished();
}

void RequestParser::field_finished() {
  const QueryType type = m_request.type;
  switch (m_field) {
    case Field::type: {
      const uint8_t byte = m_scratch[0];
      m_request.type = static_cast<QueryType>(byte);
      switch (m_request.type) {
        case QueryType::validate:
        case QueryType::ping:
          return begin(Field::number);
        case QueryType::set:
        case QueryType::append:
        case QueryType::queue_push:
        case QueryType::compare_set:
        case QueryType::get:
        case QueryType::delete_key:
        case QueryType::queue_pop:
        case QueryType::queue_len:
        case QueryType::add:
          return begin(Field::key);
        case QueryType::check:
        case QueryType::wait:
        case QueryType::multi_get:
        case QueryType::multi_set:
          return begin(Field::count);
        case QueryType::get_num_keys:
        case QueryType::cancel_wait:
        case QueryType::list_keys:
        case QueryType::auth_challenge:
          return begin(Field::done);
        case QueryType::auth_response:
          return begin(Field::proof);
      }
      throw ProtocolViolation("unknown command byte " + query_type_name(byte));
    }
    case Field::number:
      m_request.number = static_cast<uint32_t>(scratch_u64());
      return begin(Field::done);
    case Field::delta:
      m_request.delta = static_cast<int64_t>(scratch_u64());
      return begin(Field::done);
    case Field::count:
      m_count = scratch_u64();
      if (m_count > k_max_key_count)
        throw ProtocolViolation("key count " + std::to_string(m_count) + " is over the limit of " +
                                std::to_string(k_max_key_count));
      return begin(m_count == 0 ? Field::done : Field::key);
    case Field::key:
      switch (type) {
        case QueryType::set:
        case QueryType::append:
        case QueryType::queue_push:
        case QueryType::compare_set:
        case QueryType::multi_set:
          return begin(Field::value);
        case QueryType::add:
          return begin(Field::delta);
        case QueryType::check:
        case QueryType::wait:
        case QueryType::multi_get:
          return begin(m_request.keys.size() < m_count ? Field::key : Field::done);
        default:
          return begin(Field::done);
      }
    case Field::value:
      if (type == QueryType::compare_set) return begin(m_request.values.size() < 2 ? Field::value : Field::done);
      if (type == QueryType::multi_set) return begin(m_request.values.size() < m_count ? Field::key : Field::done);
      return begin(Field::done);
    case Field::proof:
      return begin(Field::done);
    case Field::done:
      break;
  }
}

}  // namespace ds::store
