// Hugging Face safetensors files: what the consolidated export writes (so `GPT2LMHeadModel`
// loads what we trained, DESIGN.md §2) and what we read back.
//
// Layout: an 8-byte little-endian header length N, then N bytes of JSON header, then the data
// buffer. The header maps each tensor name to {"dtype","shape","data_offsets":[begin,end]} (byte
// offsets into the data buffer) and may hold "__metadata__", a map of strings to strings.
// What the reference implementation (huggingface/safetensors) requires of a file, and we check:
// the header is at most 100,000,000 bytes, UTF-8 JSON starting with '{'; every tensor's byte range
// matches dtype size × product(shape); the ranges tile the buffer from 0 to its end with no gap or
// overlap.
// What we write, as the reference writer does, byte for byte: "__metadata__" first, tensors
// ordered by descending dtype size (F32, then BF16, then F16) and then by name, offsets contiguous
// from 0, compact JSON padded with spaces to a multiple of 8 bytes. So every tensor's data starts at
// a file offset aligned to its element size, and a reader can map the file and cast in place.
// Default metadata is {"format": "pt"}, which transformers' from_pretrained expects.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/dtype.hpp"
#include "base/mapped_file.hpp"
#include "base/tensor.hpp"

namespace ds::zero {

constexpr uint64_t k_safetensors_max_header_bytes = 100'000'000;  // the reference reader's limit

// "F32", "BF16", "F16": the names safetensors headers use for our dtypes.
const char* safetensors_dtype_name(DType dtype);

// Receives a tensor's bytes from a streaming producer (SafetensorsWriter::add with a Producer).
class SafetensorsSink {
 public:
  virtual ~SafetensorsSink() = default;
  virtual void write(const void* data, size_t size) = 0;
};

class SafetensorsWriter {
 public:
  // Called once, during write(), to write exactly the tensor's byte size into the sink (in any
  // number of pieces), so a multi-GB export converts and streams one piece at a time instead of
  // holding a second copy of the model.
  using Producer = std::function<void(SafetensorsSink& sink)>;

  SafetensorsWriter();  // metadata starts as {"format": "pt"}

  // Sets (or replaces) a "__metadata__" entry. Keys are written in sorted order.
  void set_metadata(const std::string& key, const std::string& value);
  void clear_metadata() { m_metadata.clear(); }  // no "__metadata__" at all (not even "format")
  // Adds a tensor whose bytes are `bytes` (little-endian, row-major, size = numel × dtype size).
  // Does not copy: `bytes` must stay valid until write() returns. A duplicate or empty name, the
  // name "__metadata__", a negative dimension or a size that disagrees with the shape is a bug in
  // the caller (DS_CHECK).
  void add(std::string name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> bytes);
  // Adds a tensor whose bytes `producer` streams during write().
  void add(std::string name, DType dtype, std::vector<int64_t> shape, Producer producer);

  size_t tensor_count() const { return m_tensors.size(); }
  // The header as it will be written: compact JSON padded with spaces to a multiple of 8 bytes.
  std::string header() const;
  uint64_t file_size() const;  // 8 + header + data

  // Writes the file through an AtomicFile: `path` shows the old content (or nothing) until the
  // complete new file replaces it. Throws IoError (and leaves `path` as it was) on any failure.
  void write(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t bytes;
    Producer producer;
  };
  void add_entry(Entry entry);
  std::vector<const Entry*> ordered() const;  // the order tensors are written in

  std::vector<Entry> m_tensors;
  std::map<std::string, std::string> m_metadata;
};

struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype;            // as written in the header: "F32", "BF16", "F16", "I64", "U8", ...
  std::vector<int64_t> shape;
  int64_t numel = 0;
  size_t element_size = 0;      // bytes per element of `dtype`
  uint64_t begin = 0;           // byte range in the data buffer (after the header)
  uint64_t end = 0;
  uint64_t bytes() const { return end - begin; }
  // Our dtype for F32, BF16 and F16; throws IoError naming the tensor for any other.
  DType ds_dtype() const;
};

class SafetensorsReader {
 public:
  // Maps and validates the whole file. Throws IoError naming the file and the first thing wrong
  // (too short, header length past the end, header not JSON, unknown dtype, offsets that disagree
  // with the shape, overlap, or a gap, or bytes past the last tensor).
  explicit SafetensorsReader(std::string path);

  const std::string& path() const { return m_file.path(); }
  const std::vector<SafetensorsTensorInfo>& tensors() const { return m_tensors; }  // in file order
  const std::map<std::string, std::string>& metadata() const { return m_metadata; }
  uint64_t header_bytes() const { return m_header_bytes; }  // N, the JSON header's length

  bool contains(std::string_view name) const;
  // Throws IoError naming the file and the missing tensor.
  const SafetensorsTensorInfo& info(std::string_view name) const;
  // The tensor's bytes, as stored (read-only, mapped).
  std::span<const std::byte> bytes(std::string_view name) const;
  // Copies the tensor into `out`, converting F32/BF16/F16 to out.dtype (round to nearest even).
  // Throws IoError when the tensor is missing, of another dtype family, or out.numel differs.
  void read(std::string_view name, TensorRef out) const;

 private:
  MappedFile m_file;
  uint64_t m_header_bytes = 0;
  std::vector<SafetensorsTensorInfo> m_tensors;
  std::map<std::string, size_t, std::less<>> m_index;
  std::map<std::string, std::string> m_metadata;
};

}  // namespace ds::zero
