// A blocking TCP connection in which every operation has a deadline (poll on a non-blocking
// socket), so a dead or silent peer is reported, never waited on forever. Used by the store client.
// Not thread-safe: the owner serialises calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ds::store {

using SteadyTime = std::chrono::steady_clock::time_point;

// Why an operation on a TcpConnection failed. what() is a short phrase ("connection refused",
// "the peer closed the connection", "no reply in time") for the caller to put in context.
class TcpFailure : public std::runtime_error {
 public:
  enum class Kind { refused, unresolved, closed, timed_out, error };
  TcpFailure(Kind kind, const std::string& what) : std::runtime_error(what), m_kind(kind) {}
  Kind kind() const { return m_kind; }

 private:
  Kind m_kind;
};

class TcpConnection {
 public:
  TcpConnection() = default;
  ~TcpConnection() { close(); }
  TcpConnection(TcpConnection&& other) noexcept
      : m_fd(other.m_fd), m_buffer(std::move(other.m_buffer)), m_begin(other.m_begin), m_end(other.m_end) {
    other.m_fd = -1;
  }
  TcpConnection& operator=(TcpConnection&& other) noexcept;
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  // One attempt to connect to host:port (every address host resolves to, in order) before
  // deadline. Throws TcpFailure (refused, unresolved, timed_out, error).
  static TcpConnection connect(const std::string& host, uint16_t port, SteadyTime deadline);

  bool is_open() const { return m_fd >= 0; }
  void close();

  // Throw TcpFailure (closed, timed_out, error) when the deadline passes or the peer goes away.
  void send_all(std::string_view bytes, SteadyTime deadline);
  void recv_exact(char* out, std::size_t n, SteadyTime deadline);
  uint8_t recv_u8(SteadyTime deadline);
  uint32_t recv_u32(SteadyTime deadline);
  uint64_t recv_u64(SteadyTime deadline);
  int64_t recv_i64(SteadyTime deadline) { return static_cast<int64_t>(recv_u64(deadline)); }
  // A uint64-length-prefixed string; a length over max_bytes is a TcpFailure::error (garbage).
  std::string recv_string(std::size_t max_bytes, SteadyTime deadline);

 private:
  explicit TcpConnection(int fd) : m_fd(fd) {}
  void wait_ready(short events, SteadyTime deadline);
  // Waits for data, then reads what has arrived (up to `room` bytes) into dst; never 0.
  std::size_t read_some(char* dst, std::size_t room, SteadyTime deadline);

  int m_fd = -1;
  // Bytes received but not yet consumed: [m_begin, m_end) of m_buffer. A reply usually arrives in
  // one segment; buffering lets a length-prefixed reply cost one poll and one recv, not four.
  std::string m_buffer;
  std::size_t m_begin = 0;
  std::size_t m_end = 0;
};

}  // namespace ds::store
