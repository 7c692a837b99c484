// A whole file mapped read-only into memory (mmap), for data shards and safetensors files that may
// be far larger than what we read of them: pages are loaded on first touch and shared with the page
// cache, never copied. Owns the mapping; movable, not copyable. Contents must not change while
// mapped (we only map files we or a finished tool wrote).
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace ds {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`. Throws IoError naming the path and the errno text (missing file, a directory,
  // no permission). An empty file maps to an empty span.
  explicit MappedFile(std::string path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(m_data), m_size}; }
  const std::byte* data() const { return static_cast<const std::byte*>(m_data); }
  size_t size() const { return m_size; }
  const std::string& path() const { return m_path; }

 private:
  void release() noexcept;

  std::string m_path;
  void* m_data = nullptr;
  size_t m_size = 0;
};

}  // namespace ds
