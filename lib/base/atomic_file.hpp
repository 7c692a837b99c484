// Crash-safe file writing: a reader of `path` sees either the old content or the complete new
// content, never a partial file, whatever happens to the writer (crash, SIGKILL, full disk, power
// loss after commit() returned).
//
// How: bytes go to a temporary file `<path>.tmp.<pid>.<random>` in the same directory (so the final
// rename stays within one file system); commit() flushes, fsyncs the file, renames it over `path`
// (atomic on POSIX) and fsyncs the directory so the rename itself is durable. Without commit(), the
// destructor removes the temporary file and `path` is untouched. This is what checkpoint manifests
// and the `latest` pointer use (DESIGN.md §2, "written last by atomic rename").
//
// A process killed before commit() leaves its temporary file behind (nothing runs to remove it);
// such files match `<path>.tmp.*` and are never read by anything.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace ds {

class AtomicFile {
 public:
  // Creates the temporary file next to `path`. Throws IoError naming the temporary file and the
  // errno text when it cannot be created (missing directory, no permission, ...).
  explicit AtomicFile(std::string path);
  // Without commit(): closes and removes the temporary file; never throws.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  // Appends bytes (buffered). Throws IoError naming the file on a failed write (e.g. ENOSPC).
  // Must not be called after commit().
  void write(const void* data, size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

  // Makes the written bytes the content of path(): flush, fsync(file), rename, fsync(directory).
  // Throws IoError on any failure, in which case path() keeps its old content (or stays absent) and
  // the temporary file is removed. Call at most once.
  void commit();

  const std::string& path() const { return m_path; }
  const std::string& temp_path() const { return m_temp_path; }
  size_t bytes_written() const { return m_bytes_written; }
  bool committed() const { return m_committed; }

 private:
  void flush_buffer();
  void discard() noexcept;  // close and unlink the temporary file

  std::string m_path;
  std::string m_temp_path;
  int m_fd = -1;
  std::vector<char> m_buffer;  // pending bytes, written in large blocks
  size_t m_bytes_written = 0;
  bool m_committed = false;
};

// Writes `bytes` as the whole content of `path` through an AtomicFile. Throws IoError.
void write_file_atomic(const std::string& path, std::string_view bytes);

// The whole content of `path`. Throws IoError naming the path and the errno text.
std::string read_file(const std::string& path);

}  // namespace ds
