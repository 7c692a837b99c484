// Helpers for the store tests: raw protocol connections (bytes in, bytes out, with deadlines so a
// test never hangs) and hex fixtures.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "store/store_protocol.hpp"
#include "store/tcp_connection.hpp"

namespace ds::test {

// "00 cef7853c" -> bytes; spaces ignored.
inline std::string from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw std::invalid_argument(std::string("bad hex digit ") + c);
  };
  std::string out;
  int high = -1;
  for (char c : hex) {
    if (c == ' ') continue;
    if (high < 0) {
      high = nibble(c);
    } else {
      out.push_back(static_cast<char>(high * 16 + nibble(c)));
      high = -1;
    }
  }
  if (high >= 0) throw std::invalid_argument("odd number of hex digits");
  return out;
}

inline std::string to_hex(std::string_view bytes) {
  static constexpr char k_digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(k_digits[c >> 4]);
    out.push_back(k_digits[c & 0xf]);
  }
  return out;
}

// uint64 length + bytes, as the protocol frames strings.
inline std::string framed(std::string_view bytes) {
  store::WireWriter w;
  w.bytes(bytes);
  return w.take();
}

inline std::string u64_le(uint64_t value) {
  store::WireWriter w;
  w.u64(value);
  return w.take();
}

// A raw protocol connection to a local server.
class RawClient {
 public:
  explicit RawClient(uint16_t port, std::chrono::milliseconds patience = std::chrono::seconds(20))
      : m_patience(patience),
        m_connection(store::TcpConnection::connect("127.0.0.1", port, std::chrono::steady_clock::now() + patience)) {}

  void send(std::string_view bytes) { m_connection.send_all(bytes, deadline()); }
  void send_hex(std::string_view hex) { send(from_hex(hex)); }
  std::string recv(std::size_t n) {
    std::string out(n, '\0');
    m_connection.recv_exact(out.data(), n, deadline());
    return out;
  }
  std::string recv_hex(std::size_t n) { return to_hex(recv(n)); }
  // VALIDATE with the magic, as every client starts.
  void validate() { send_hex("00 cef7853c"); }
  // True if the server closes the connection (EOF or reset) before sending anything more.
  bool closed_by_server() {
    try {
      char byte;
      m_connection.recv_exact(&byte, 1, deadline());
      return false;
    } catch (const store::TcpFailure& failure) {
      return failure.kind() == store::TcpFailure::Kind::closed;
    }
  }
  void close() { m_connection.close(); }

 private:
  std::chrono::steady_clock::time_point deadline() const { return std::chrono::steady_clock::now() + m_patience; }

  std::chrono::milliseconds m_patience;
  store::TcpConnection m_connection;
};

}  // namespace ds::test
