#include "zero/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "base/atomic_file.hpp"
#include "base/check.hpp"
#include "base/error.hpp"

namespace ds::zero {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; add byte swaps for this host");

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
  }
  return "?";
}

namespace {

// The reference writer orders tensors by its dtype enum, descending: F32 > BF16 > F16.
int dtype_rank(DType dtype) { return dtype == DType::f32 ? 2 : dtype == DType::bf16 ? 1 : 0; }

// A JSON string literal of `text` (quoted, escaped); invalid UTF-8 is a caller bug.
std::string json_string(const std::string& text) {
  try {
    return nlohmann::json(text).dump();
  } catch (const nlohmann::json::exception&) {
    DS_CHECK(false, "safetensors name or metadata '", text, "' is not valid UTF-8");
  }
  return {};
}

// Element size of every dtype the safetensors format defines (0: unknown).
size_t element_size_of(std::string_view dtype) {
  static const std::map<std::string_view, size_t> sizes{
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},     {"U32", 4},     {"F32", 4},     {"F64", 8},
      {"I64", 8},  {"U64", 8}, {"C64", 8}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

// Counts and forwards a producer's bytes, so a producer that writes too much or too little is caught.
class CountingSink final : public SafetensorsSink {
 public:
  CountingSink(AtomicFile& file, const std::string& tensor, uint64_t expected)
      : m_file(file), m_tensor(tensor), m_expected(expected) {}
  void write(const void* data, size_t size) override {
    DS_CHECK(m_written + size <= m_expected, "producer of tensor '", m_tensor, "' wrote more than its ", m_expected, " bytes");
    m_file.write(data, size);
    m_written += size;
  }
  uint64_t written() const { return m_written; }

 private:
  AtomicFile& m_file;
  const std::string& m_tensor;
  uint64_t m_expected;
  uint64_t m_written = 0;
};

}  // namespace

// ---- writer ------------------------------------------------------------------------------------

SafetensorsWriter::SafetensorsWriter() { m_metadata["format"] = "pt"; }

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) { m_metadata[key] = value; }

void SafetensorsWriter::add_entry(Entry entry) {
  DS_CHECK(!entry.name.empty() && entry.name != "__metadata__", "safetensors tensor name '", entry.name, "'");
  for (const Entry& existing : m_tensors) DS_CHECK(existing.name != entry.name, "tensor '", entry.name, "' added twice");
  m_tensors.push_back(std::move(entry));
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes) {
  const std::byte* data = bytes.data();
  const size_t size = bytes.size();
  add(std::move(name), dtype, std::move(shape), [data, size](SafetensorsSink& sink) { sink.write(data, size); });
  DS_CHECK(m_tensors.back().bytes == size, "tensor '", m_tensors.back().name, "' of shape ", shape_text(m_tensors.back().shape),
           " ", dtype_name(dtype), " needs ", m_tensors.back().bytes, " bytes, got ", size);
}

void SafetensorsWriter::add(std::string name, DType dtype, std::vector<int64_t> shape, Producer producer) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    DS_CHECK(d >= 0, "tensor '", name, "' has shape ", shape_text(shape));
    numel *= static_cast<uint64_t>(d);
  }
  DS_CHECK(producer != nullptr, "tensor '", name, "' without bytes");
  add_entry(Entry{std::move(name), dtype, std::move(shape), numel * dtype_size(dtype), std::move(producer)});
}

std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::ordered() const {
  std::vector<const Entry*> order;
  for (const Entry& e : m_tensors) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
    if (dtype_rank(a->dtype) != dtype_rank(b->dtype)) return dtype_rank(a->dtype) > dtype_rank(b->dtype);
    return a->name < b->name;  // bytewise, as the reference writer compares names
  });
  return order;
}

std::string SafetensorsWriter::header() const {
  std::string json = "{";
  bool first = true;
  if (!m_metadata.empty()) {
    json += "\"__metadata__\":{";
    for (const auto& [key, value] : m_metadata) {
      if (!first) json += ',';
      first = false;
      json += json_string(key) + ":" + json_string(value);
    }
    json += "}";
  }
  uint64_t offset = 0;
  for (const Entry* e : ordered()) {
    if (json.size() > 1) json += ',';
    json += json_string(e->name) + ":{\"dtype\":\"" + safetensors_dtype_name(e->dtype) + "\",\"shape\":" + shape_text(e->shape) +
            ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + e->bytes) + "]}";
    offset += e->bytes;
  }
  json += "}";
  json.append((8 - json.size() % 8) % 8, ' ');  // data then starts 8-byte aligned in the file
  return json;
}

uint64_t SafetensorsWriter::file_size() const {
  uint64_t data = 0;
  for (const Entry& e : m_tensors) data += e.bytes;
  return 8 + header().size() + data;
}

void SafetensorsWriter::write(const std::string& path) const {
  const std::string head = header();
  if (head.size() > k_safetensors_max_header_bytes)
    throw IoError("cannot write '" + path + "': its safetensors header would be " + std::to_string(head.size()) +
                  " bytes, more than the " + std::to_string(k_safetensors_max_header_bytes) + " readers accept");
  AtomicFile file(path);
  const uint64_t length = head.size();  // little-endian u64 (static_assert above)
  file.write(&length, sizeof length);
  file.write(head);
  for (const Entry* e : ordered()) {
    CountingSink sink(file, e->name, e->bytes);
    e->producer(sink);
    DS_CHECK(sink.written() == e->bytes, "producer of tensor '", e->name, "' wrote ", sink.written(), " of its ", e->bytes,
             " bytes");
  }
  file.commit();
}

// ---- reader ------------------------------------------------------------------------------------

DType SafetensorsTensorInfo::ds_dtype() const {
  if (dtype == "F32") return DType::f32;
  if (dtype == "BF16") return DType::bf16;
  if (dtype == "F16") return DType::f16;
  throw IoError("tensor '" + name + "' is " + dtype + "; only F32, BF16 and F16 tensors can be read as parameters");
}

SafetensorsReader::SafetensorsReader(std::string path) : m_file(std::move(path)) {
  const std::string what = "safetensors file '" + m_file.path() + "'";
  const size_t size = m_file.size();
  if (size < 8) throw IoError(what + " is " + std::to_string(size) + " bytes, too short for the 8-byte header length");
  uint64_t n;
  std::memcpy(&n, m_file.data(), sizeof n);
  if (n > k_safetensors_max_header_bytes)
    throw IoError(what + " declares a header of " + std::to_string(n) + " bytes, more than the " +
                  std::to_string(k_safetensors_max_header_bytes) + " the format allows: it is not a safetensors file");
  if (n > size - 8)
    throw IoError(what + " declares a header of " + std::to_string(n) + " bytes but holds only " + std::to_string(size - 8) +
                  " bytes after the length: the file is truncated");
  m_header_bytes = n;
  const std::string_view header(reinterpret_cast<const char*>(m_file.data()) + 8, n);
  if (header.empty() || header.front() != '{')
    throw IoError(what + " has a header that does not start with '{': it is not a safetensors file");

  // Parse, noting duplicate top-level keys (nlohmann would silently keep the last one).
  std::set<std::string> seen;
  std::string duplicate;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(header, [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
      if (event == nlohmann::json::parse_event_t::key && depth == 1 && !seen.insert(parsed.get<std::string>()).second &&
          duplicate.empty())
        duplicate = parsed.get<std::string>();
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    throw IoError(what + " has a header that is not valid JSON: " + e.what());
  }
  if (!json.is_object()) throw IoError(what + " has a header that is not a JSON object");
  if (!duplicate.empty()) throw IoError(what + " names '" + duplicate + "' twice in its header");

  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw IoError(what + ": '__metadata__' must be an object of strings, got " + entry.dump());
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          throw IoError(what + ": '__metadata__' must map strings to strings, but '" + key + "' is " + value.dump());
        m_metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string tensor = what + ": tensor '" + name + "'";
    if (!entry.is_object()) throw IoError(tensor + " must be an object with dtype, shape and data_offsets, got " + entry.dump());
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(key)) throw IoError(tensor + " lacks '" + key + "'");
    SafetensorsTensorInfo info;
    info.name = name;
    if (!entry["dtype"].is_string()) throw IoError(tensor + " has dtype " + entry["dtype"].dump() + ", not a string");
    info.dtype = entry["dtype"].get<std::string>();
    info.element_size = element_size_of(info.dtype);
    if (info.element_size == 0) throw IoError(tensor + " has unknown dtype '" + info.dtype + "'");
    const auto& shape = entry["shape"];
    if (!shape.is_array()) throw IoError(tensor + " has shape " + shape.dump() + ", not a list");
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_unsigned()) throw IoError(tensor + " has shape " + shape.dump() + ": dimensions must be non-negative integers");
      const auto dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, dim, &numel))
        throw IoError(tensor + " has shape " + shape.dump() + ", too large to address");
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      throw IoError(tensor + " has data_offsets " + offsets.dump() + ", not a pair of non-negative integers");
    info.begin = offsets[0].get<uint64_t>();
    info.end = offsets[1].get<uint64_t>();
    uint64_t expected;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(info.element_size), &expected) || numel > static_cast<uint64_t>(INT64_MAX))
      throw IoError(tensor + " has shape " + shape.dump() + ", too large to address");
    info.numel = static_cast<int64_t>(numel);
    if (info.end < info.begin)
      throw IoError(tensor + " has data_offsets " + offsets.dump() + ": the end lies before the begin");
    if (info.end - info.begin != expected)
      throw IoError(tensor + " (" + info.dtype + ", shape " + shape_text(info.shape) + ") needs " + std::to_string(expected) +
                    " bytes but its data_offsets " + offsets.dump() + " span " + std::to_string(info.end - info.begin));
    m_tensors.push_back(std::move(info));
  }

  // The ranges must tile the data buffer exactly, as the reference reader demands.
  std::stable_sort(m_tensors.begin(), m_tensors.end(), [](const SafetensorsTensorInfo& a, const SafetensorsTensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const uint64_t data_size = size - 8 - n;
  uint64_t position = 0;
  for (size_t i = 0; i < m_tensors.size(); ++i) {
    const SafetensorsTensorInfo& t = m_tensors[i];
    if (t.begin != position) {
      if (i == 0)
        throw IoError(what + ": the first tensor '" + t.name + "' starts at byte " + std::to_string(t.begin) +
                      " of the data buffer; tensors must tile the buffer from byte 0");
      throw IoError(what + ": tensor '" + t.name + "' starts at byte " + std::to_string(t.begin) + " of the data buffer but '" +
                    m_tensors[i - 1].name + "' ends at byte " + std::to_string(position) + (t.begin < position ? " (overlap)" : " (gap)") +
                    "; tensors must tile the buffer without gaps or overlaps");
    }
    position = t.end;
  }
  if (position != data_size) {
    if (position > data_size)
      throw IoError(what + ": its tensors end at byte " + std::to_string(position) + " of the data buffer but the file holds only " +
                    std::to_string(data_size) + " bytes of data: the file is truncated");
    throw IoError(what + ": its tensors end at byte " + std::to_string(position) + " of the data buffer but the file holds " +
                  std::to_string(data_size) + " bytes of data: " + std::to_string(data_size - position) +
                  " unexpected bytes follow the last tensor");
  }
  for (size_t i = 0; i < m_tensors.size(); ++i) m_index.emplace(m_tensors[i].name, i);
}

bool SafetensorsReader::contains(std::string_view name) const { return m_index.find(name) != m_index.end(); }

const SafetensorsTensorInfo& SafetensorsReader::info(std::string_view name) const {
  const auto it = m_index.find(name);
  if (it == m_index.end())
    throw IoError("safetensors file '" + path() + "' has no tensor '" + std::string(name) + "' (it holds " +
                  std::to_string(m_tensors.size()) + " tensors)");
  return m_tensors[it->second];
}

std::span<const std::byte> SafetensorsReader::bytes(std::string_view name) const {
  const SafetensorsTensorInfo& t = info(name);
  return m_file.bytes().subspan(8 + m_header_bytes + t.begin, t.bytes());
}

void SafetensorsReader::read(std::string_view name, TensorRef out) const {
  const SafetensorsTensorInfo& t = info(name);
  const DType from = t.ds_dtype();
  if (t.numel != out.numel)
    throw IoError("safetensors file '" + path() + "': tensor '" + t.name + "' has " + std::to_string(t.numel) +
                  " elements (shape " + shape_text(t.shape) + "), the destination " + std::to_string(out.numel));
  const std::byte* src = bytes(name).data();
  if (from == out.dtype) {
    std::memcpy(out.data, src, t.bytes());
    return;
  }
  // Element-wise conversion through fp32; memcpy per element since the mapping gives no alignment
  // guarantee for files other writers produced.
  visit_dtype(from, [&](auto source_type) {
    using S = decltype(source_type);
    visit_dtype(out.dtype, [&](auto target_type) {
      using D = decltype(target_type);
      D* dst = out.as<D>();
      for (int64_t i = 0; i < t.numel; ++i) {
        S value;
        std::memcpy(&value, src + static_cast<size_t>(i) * sizeof(S), sizeof(S));
        dst[i] = from_float<D>(to_float(value));
      }
    });
  });
}

}  // namespace ds::zero
