#include "base/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "base/check.hpp"
#include "base/error.hpp"
#include "base/log.hpp"

namespace ds {
namespace {

constexpr size_t k_write_block_bytes = size_t{1} << 20;  // pending bytes before a write(2)

std::string errno_text(int err) { return std::strerror(err); }

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string random_suffix() {
  // Uniqueness only needs to hold among writers of the same path at the same time; the pid already
  // separates processes, the random part separates objects within one process.
  static thread_local std::mt19937_64 generator{std::random_device{}()};
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(generator()));
  return text;
}

// Writes all of [data, data+size) to fd, retrying short writes and EINTR. Returns 0 or an errno.
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : m_path(std::move(path)) {
  if (m_path.empty()) throw IoError("cannot write a file with an empty path");
  for (int attempt = 0;; ++attempt) {
    m_temp_path = m_path + ".tmp." + std::to_string(::getpid()) + "." + random_suffix();
    m_fd = ::open(m_temp_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (m_fd >= 0) break;
    const int err = errno;
    if (err == EEXIST && attempt < 8) continue;
    throw IoError("cannot create temporary file '" + m_temp_path + "' to write '" + m_path + "': " + errno_text(err) +
                  " (does the directory '" + directory_of(m_path) + "' exist and is it writable?)");
  }
  m_buffer.reserve(k_write_block_bytes);
}

AtomicFile::~AtomicFile() {
  if (!m_committed) discard();
}

void AtomicFile::discard() noexcept {
  if (m_fd >= 0) {
    ::close(m_fd);
    m_fd = -1;
  }
  if (!m_temp_path.empty()) ::unlink(m_temp_path.c_str());
}

void AtomicFile::flush_buffer() {
  if (m_buffer.empty()) return;
  const int err = write_all(m_fd, m_buffer.data(), m_buffer.size());
  m_buffer.clear();
  if (err != 0) throw IoError("cannot write '" + m_path + "' (temporary file '" + m_temp_path + "'): " + errno_text(err));
}

void AtomicFile::write(const void* data, size_t size) {
  DS_CHECK(!m_committed, "write to '", m_path, "' after commit()");
  DS_CHECK(m_fd >= 0, "write to '", m_path, "' after a failed commit()");
  const char* bytes = static_cast<const char*>(data);
  if (size >= k_write_block_bytes) {  // large blocks go straight through, no copy
    flush_buffer();
    const int err = write_all(m_fd, bytes, size);
    if (err != 0) throw IoError("cannot write '" + m_path + "' (temporary file '" + m_temp_path + "'): " + errno_text(err));
  } else {
    if (m_buffer.size() + size > k_write_block_bytes) flush_buffer();
    m_buffer.insert(m_buffer.end(), bytes, bytes + size);
  }
  m_bytes_written += size;
}

void AtomicFile::commit() {
  DS_CHECK(!m_committed, "commit() of '", m_path, "' called twice");
  DS_CHECK(m_fd >= 0, "commit() of '", m_path, "' after a failed commit()");
  try {
    flush_buffer();
    if (::fsync(m_fd) != 0) throw IoError("cannot fsync '" + m_temp_path + "' (for '" + m_path + "'): " + errno_text(errno));
    const int fd = m_fd;
    m_fd = -1;
    if (::close(fd) != 0) throw IoError("cannot close '" + m_temp_path + "' (for '" + m_path + "'): " + errno_text(errno));
    if (::rename(m_temp_path.c_str(), m_path.c_str()) != 0)
      throw IoError("cannot rename '" + m_temp_path + "' to '" + m_path + "': " + errno_text(errno));
  } catch (...) {
    discard();
    throw;
  }
  m_committed = true;
  // The rename is in place; fsync of the directory makes it survive a power loss. A failure here
  // cannot be undone (the new content is already visible), so it is reported, not thrown.
  const std::string dir = directory_of(m_path);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    log::warn("cannot open directory '", dir, "' to make the rename of '", m_path, "' durable: ", errno_text(errno));
    return;
  }
  // EINVAL: the file system does not support fsync of a directory (its renames are durable anyway).
  if (::fsync(dir_fd) != 0 && errno != EINVAL)
    log::warn("cannot fsync directory '", dir, "' after writing '", m_path, "': ", errno_text(errno));
  ::close(dir_fd);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError("cannot open '" + path + "' for reading: " + errno_text(errno));
  std::string content;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw IoError("cannot read '" + path + "': it is a directory, not a file");
  }
  if (st.st_size > 0) content.reserve(static_cast<size_t>(st.st_size));
  char block[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, block, sizeof block);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw IoError("cannot read '" + path + "': " + errno_text(err));
    }
    if (n == 0) break;
    content.append(block, static_cast<size_t>(n));
  }
  ::close(fd);
  return content;
}

}  // namespace ds
