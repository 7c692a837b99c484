#include "store/tcp_connection.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ds::store {
namespace {

int remaining_ms(SteadyTime deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));  // round up: never wake early
}

[[noreturn]] void throw_errno(const char* what, int error_number) {
  if (error_number == ECONNRESET || error_number == EPIPE)
    throw TcpFailure(TcpFailure::Kind::closed, "the peer closed the connection (" + std::string(std::strerror(error_number)) + ")");
  throw TcpFailure(TcpFailure::Kind::error, std::string(what) + ": " + std::strerror(error_number));
}

}  // namespace

TcpConnection& TcpConnection::operator=(TcpConnection&& other) noexcept {
  if (this != &other) {
    close();
    m_fd = other.m_fd;
    m_buffer = std::move(other.m_buffer);
    m_begin = other.m_begin;
    m_end = other.m_end;
    other.m_fd = -1;
  }
  return *this;
}

void TcpConnection::close() {
  if (m_fd >= 0) ::close(m_fd);
  m_fd = -1;
  m_begin = m_end = 0;
}

TcpConnection TcpConnection::connect(const std::string& host, uint16_t port, SteadyTime deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addresses = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &addresses);
  if (rc != 0) throw TcpFailure(TcpFailure::Kind::unresolved, std::string("cannot resolve host: ") + ::gai_strerror(rc));

  TcpFailure last(TcpFailure::Kind::error, "no addresses");
  for (addrinfo* a = addresses; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last = TcpFailure(TcpFailure::Kind::error, std::string("socket: ") + std::strerror(errno));
      continue;
    }
    TcpConnection connection(fd);
    int error_number = 0;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      error_number = errno;
      if (error_number == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready == 0) {
          last = TcpFailure(TcpFailure::Kind::timed_out, "connecting timed out");
          continue;
        }
        socklen_t len = sizeof(error_number);
        if (ready < 0 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error_number, &len) != 0) error_number = errno;
      }
    }
    if (error_number == 0) {
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      ::freeaddrinfo(addresses);
      return connection;
    }
    last = TcpFailure(error_number == ECONNREFUSED ? TcpFailure::Kind::refused : TcpFailure::Kind::error,
                      std::strerror(error_number));
  }
  ::freeaddrinfo(addresses);
  throw last;
}

void TcpConnection::wait_ready(short events, SteadyTime deadline) {
  for (;;) {
    pollfd p{m_fd, events, 0};
    const int ready = ::poll(&p, 1, remaining_ms(deadline));
    if (ready > 0) return;  // readable/writable, or an error/hang-up the next call reports
    if (ready == 0) throw TcpFailure(TcpFailure::Kind::timed_out, "no reply in time");
    if (errno != EINTR) throw_errno("poll", errno);
  }
}

void TcpConnection::send_all(std::string_view bytes, SteadyTime deadline) {
  if (m_fd < 0) throw TcpFailure(TcpFailure::Kind::closed, "the connection is closed");
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(m_fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait_ready(POLLOUT, deadline);
      continue;
    }
    throw_errno("send", errno);
  }
}

std::size_t TcpConnection::read_some(char* dst, std::size_t room, SteadyTime deadline) {
  // Poll first: a request has just been sent, so the reply is usually not there yet and a
  // speculative recv would only return EAGAIN.
  wait_ready(POLLIN, deadline);
  for (;;) {
    const ssize_t r = ::recv(m_fd, dst, room, 0);
    if (r > 0) return static_cast<std::size_t>(r);
    if (r == 0) throw TcpFailure(TcpFailure::Kind::closed, "the peer closed the connection");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_ready(POLLIN, deadline);
      continue;
    }
    throw_errno("recv", errno);
  }
}

void TcpConnection::recv_exact(char* out, std::size_t n, SteadyTime deadline) {
  if (m_fd < 0) throw TcpFailure(TcpFailure::Kind::closed, "the connection is closed");
  constexpr std::size_t k_buffer_bytes = 64 * 1024;
  std::size_t got = std::min(n, m_end - m_begin);
  std::memcpy(out, m_buffer.data() + m_begin, got);
  m_begin += got;
  while (got < n) {
    if (n - got >= k_buffer_bytes) {  // a large value: straight into the destination
      got += read_some(out + got, n - got, deadline);
      continue;
    }
    if (m_buffer.size() < k_buffer_bytes) m_buffer.resize(k_buffer_bytes);
    m_begin = m_end = 0;  // the buffer is used up; keep it empty if read_some throws
    m_end = read_some(m_buffer.data(), m_buffer.size(), deadline);
    const std::size_t take = std::min(n - got, m_end);
    std::memcpy(out + got, m_buffer.data(), take);
    m_begin = take;
    got += take;
  }
}

uint8_t TcpConnection::recv_u8(SteadyTime deadline) {
  char byte = 0;
  recv_exact(&byte, 1, deadline);
  return static_cast<uint8_t>(byte);
}

uint32_t TcpConnection::recv_u32(SteadyTime deadline) {
  unsigned char bytes[4];
  recv_exact(reinterpret_cast<char*>(bytes), 4, deadline);
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) value |= uint32_t(bytes[i]) << (8 * i);
  return value;
}

uint64_t TcpConnection::recv_u64(SteadyTime deadline) {
  unsigned char bytes[8];
  recv_exact(reinterpret_cast<char*>(bytes), 8, deadline);
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= uint64_t(bytes[i]) << (8 * i);
  return value;
}

std::string TcpConnection::recv_string(std::size_t max_bytes, SteadyTime deadline) {
  const uint64_t size = recv_u64(deadline);
  if (size > max_bytes)
    throw TcpFailure(TcpFailure::Kind::error, "the peer announced " + std::to_string(size) + " bytes, over the limit of " +
                                                  std::to_string(max_bytes) + " (not a store server?)");
  std::string out(size, '\0');
  recv_exact(out.data(), size, deadline);
  return out;
}

}  // namespace ds::store
