#include "comm/file_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/error.hpp"

namespace ds::test {
namespace {

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_atomically(const std::string& path, const std::string& value) {
  static std::atomic<int> counter{0};
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << value;
    if (!out) throw StoreError("FileStore: cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw StoreError("FileStore: cannot rename " + tmp);
}

}  // namespace

FileStore::FileStore(std::string dir, std::chrono::milliseconds timeout) : m_dir(std::move(dir)), m_timeout(timeout) {}

std::string FileStore::path(const std::string& key) const {
  // Keys contain '/': hex-encode them into one flat file name.
  static const char* digits = "0123456789abcdef";
  std::string name = "k";
  for (unsigned char c : key) {
    name += digits[c >> 4];
    name += digits[c & 15];
  }
  return m_dir + "/" + name;
}

void FileStore::set(const std::string& key, const std::string& value) { write_atomically(path(key), value); }

std::string FileStore::get(const std::string& key) {
  wait({key}, m_timeout);
  return read_file(path(key)).value();
}

std::optional<std::string> FileStore::try_get(const std::string& key) { return read_file(path(key)); }

int64_t FileStore::add(const std::string& key, int64_t delta) {
  const std::string lock_path = m_dir + "/lock";
  const int fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR, 0600);
  if (fd < 0) throw StoreError("FileStore: cannot open " + lock_path);
  ::flock(fd, LOCK_EX);
  int64_t value = 0;
  if (auto old = read_file(path(key))) value = std::stoll(*old);
  value += delta;
  write_atomically(path(key), std::to_string(value));
  ::flock(fd, LOCK_UN);
  ::close(fd);
  return value;
}

bool FileStore::check(const std::vector<std::string>& keys) {
  for (const auto& k : keys)
    if (::access(path(k).c_str(), F_OK) != 0) return false;
  return true;
}

void FileStore::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!check(keys)) {
    if (std::chrono::steady_clock::now() > deadline)
      throw RendezvousTimeout("FileStore: timed out waiting for " + std::to_string(keys.size()) + " keys");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool FileStore::delete_key(const std::string& key) { return ::unlink(path(key).c_str()) == 0; }

}  // namespace ds::test
