#include "store/store_protocol.hpp"

#include <cstring>

namespace ds::store {

std::string query_type_name(uint8_t byte) {
  switch (static_cast<QueryType>(byte)) {
    case QueryType::validate: return "VALIDATE";
    case QueryType::set: return "SET";
    case QueryType::compare_set: return "COMPARE_SET";
    case QueryType::get: return "GET";
    case QueryType::add: return "ADD";
    case QueryType::check: return "CHECK";
    case QueryType::wait: return "WAIT";
    case QueryType::get_num_keys: return "GETNUMKEYS";
    case QueryType::delete_key: return "DELETE_KEY";
    case QueryType::append: return "APPEND";
    case QueryType::multi_get: return "MULTI_GET";
    case QueryType::multi_set: return "MULTI_SET";
    case QueryType::cancel_wait: return "CANCEL_WAIT";
    case QueryType::ping: return "PING";
    case QueryType::queue_push: return "QUEUE_PUSH";
    case QueryType::queue_pop: return "QUEUE_POP";
    case QueryType::queue_len: return "QUEUE_LEN";
    case QueryType::list_keys: return "LIST_KEYS";
    case QueryType::auth_challenge: return "AUTH_CHALLENGE";
    case QueryType::auth_response: return "AUTH_RESPONSE";
  }
  static constexpr char k_digits[] = "0123456789abcdef";
  return std::string("0x") + k_digits[byte >> 4] + k_digits[byte & 0xf];
}

// ---- WireWriter --------------------------------------------------------------------------------

void WireWriter::u32(uint32_t value) {
  for (int i = 0; i < 4; ++i) m_bytes.push_back(static_cast<char>(value >> (8 * i)));
}

void WireWriter::u64(uint64_t value) {
  for (int i = 0; i < 8; ++i) m_bytes.push_back(static_cast<char>(value >> (8 * i)));
}

void WireWriter::bytes(std::string_view value) {
  u64(value.size());
  m_bytes.append(value.data(), value.size());
}

// ---- WireReader --------------------------------------------------------------------------------

bool WireReader::u8(uint8_t& out) {
  if (remaining() < 1) return false;
  out = static_cast<uint8_t>(m_buffer[m_offset]);
  m_offset += 1;
  return true;
}

bool WireReader::u32(uint32_t& out) {
  if (remaining() < 4) return false;
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= uint32_t(static_cast<uint8_t>(m_buffer[m_offset + i])) << (8 * i);
  out = value;
  m_offset += 4;
  return true;
}

bool WireReader::u64(uint64_t& out) {
  if (remaining() < 8) return false;
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= uint64_t(static_cast<uint8_t>(m_buffer[m_offset + i])) << (8 * i);
  out = value;
  m_offset += 8;
  return true;
}

bool WireReader::i64(int64_t& out) {
  uint64_t value = 0;
  if (!u64(value)) return false;
  out = static_cast<int64_t>(value);
  return true;
}

bool WireReader::bytes(std::string* out, std::size_t max_bytes, std::string_view what) {
  const std::size_t start = m_offset;
  uint64_t size = 0;
  if (!u64(size)) return false;
  if (size > max_bytes) {
    throw ProtocolViolation(std::string(what) + " of " + std::to_string(size) + " bytes is over the limit of " +
                            std::to_string(max_bytes) + " bytes");
  }
  if (m_offset + size > k_max_request_bytes) {
    throw ProtocolViolation("request of more than " + std::to_string(k_max_request_bytes) +
                            " bytes is over the limit");
  }
  if (remaining() < size) {
    m_offset = start;
    return false;
  }
  if (out) out->assign(m_buffer.data() + m_offset, size);
  m_offset += size;
  return true;
}

bool WireReader::count(uint64_t& out) {
  if (!u64(out)) return false;
  if (out > k_max_key_count) {
    throw ProtocolViolation("key count " + std::to_string(out) + " is over the limit of " +
                            std::to_string(k_max_key_count));
  }
  return true;
}

// ---- requests ----------------------------------------------------------------------------------

namespace {

// Reads count keys (and, with values, one value after each key) into out (when not null).
bool read_keys(WireReader& reader, Request* out, bool with_values) {
  uint64_t count = 0;
  if (!reader.count(count)) return false;
  if (out) {
    out->keys.resize(count);
    if (with_values) out->values.resize(count);
  }
  for (uint64_t i = 0; i < count; ++i) {
    if (!reader.key(out ? &out->keys[i] : nullptr)) return false;
    if (with_values && !reader.value(out ? &out->values[i] : nullptr)) return false;
  }
  return true;
}

bool read_one_key(WireReader& reader, Request* out) {
  if (out) out->keys.resize(1);
  return reader.key(out ? &out->keys[0] : nullptr);
}

bool read_values(WireReader& reader, Request* out, std::size_t n) {
  if (out) out->values.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    if (!reader.value(out ? &out->values[i] : nullptr)) return false;
  return true;
}

}  // namespace

std::optional<std::size_t> decode_request(std::string_view buffer, Request* out) {
  WireReader reader(buffer);
  uint8_t byte = 0;
  if (!reader.u8(byte)) return std::nullopt;
  const auto type = static_cast<QueryType>(byte);
  if (out) {
    out->type = type;
    out->keys.clear();
    out->values.clear();
    out->number = 0;
    out->delta = 0;
  }
  bool complete = false;
  switch (type) {
    case QueryType::validate:
    case QueryType::ping: {
      uint32_t number = 0;
      complete = reader.u32(number);
      if (out) out->number = number;
      break;
    }
    case QueryType::set:
    case QueryType::append:
    case QueryType::queue_push:
      complete = read_one_key(reader, out) && read_values(reader, out, 1);
      break;
    case QueryType::compare_set:
      complete = read_one_key(reader, out) && read_values(reader, out, 2);
      break;
    case QueryType::get:
    case QueryType::delete_key:
    case QueryType::queue_pop:
    case QueryType::queue_len:
      complete = read_one_key(reader, out);
      break;
    case QueryType::add: {
      int64_t delta = 0;
      complete = read_one_key(reader, out) && reader.i64(delta);
      if (out) out->delta = delta;
      break;
    }
    case QueryType::check:
    case QueryType::wait:
    case QueryType::multi_get:
      complete = read_keys(reader, out, false);
      break;
    case QueryType::multi_set:
      complete = read_keys(reader, out, true);
      break;
    case QueryType::get_num_keys:
    case QueryType::cancel_wait:
    case QueryType::list_keys:
    case QueryType::auth_challenge:
      complete = true;
      break;
    case QueryType::auth_response:
      if (out) out->values.resize(1);
      complete = reader.bytes(out ? &out->values[0] : nullptr, k_auth_proof_bytes, "authentication proof");
      break;
    default:
      throw ProtocolViolation("unknown command byte " + query_type_name(byte));
  }
  if (!complete) return std::nullopt;
  return reader.consumed();
}

std::string encode_request(const Request& request) {
  WireWriter writer;
  writer.query(request.type);
  auto value_at = [&](std::size_t i) -> std::string_view {
    return i < request.values.size() ? std::string_view(request.values[i]) : std::string_view();
  };
  auto key_at = [&](std::size_t i) -> std::string_view {
    return i < request.keys.size() ? std::string_view(request.keys[i]) : std::string_view();
  };
  switch (request.type) {
    case QueryType::validate:
    case QueryType::ping:
      writer.u32(request.number);
      break;
    case QueryType::set:
    case QueryType::append:
    case QueryType::queue_push:
      writer.bytes(key_at(0));
      writer.bytes(value_at(0));
      break;
    case QueryType::compare_set:
      writer.bytes(key_at(0));
      writer.bytes(value_at(0));
      writer.bytes(value_at(1));
      break;
    case QueryType::get:
    case QueryType::delete_key:
    case QueryType::queue_pop:
    case QueryType::queue_len:
      writer.bytes(key_at(0));
      break;
    case QueryType::add:
      writer.bytes(key_at(0));
      writer.i64(request.delta);
      break;
    case QueryType::check:
    case QueryType::wait:
    case QueryType::multi_get:
      writer.u64(request.keys.size());
      for (const auto& key : request.keys) writer.bytes(key);
      break;
    case QueryType::multi_set:
      writer.u64(request.keys.size());
      for (std::size_t i = 0; i < request.keys.size(); ++i) {
        writer.bytes(request.keys[i]);
        writer.bytes(value_at(i));
      }
      break;
    case QueryType::get_num_keys:
    case QueryType::cancel_wait:
    case QueryType::list_keys:
    case QueryType::auth_challenge:
      break;
    case QueryType::auth_response:
      writer.bytes(value_at(0));
      break;
  }
  return writer.take();
}

}  // namespace ds::store
