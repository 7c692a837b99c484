// Fuzz target "store_server": a real StoreServer (lib/store/store_server.hpp) on 127.0.0.1, port
// 0, fed the input over a real TCP connection; then a well-behaved client must still be served.
//
// Input: byte 0 is the mode, the rest the bytes to send.
//   bit 0    the harness sends VALIDATE first (so the fuzzer need not find the magic)
//   bit 1    the harness sends VALIDATE and proves the job token first (authenticated paths)
//   bit 2    the server has no token (otherwise it has one)
//   bit 3    the server has require_auth (only with a token)
//   bits 4-5 piece size: the bytes go out in pieces of 1..1, 1..7, 1..64 bytes, or all at once
//   bit 6    tight caps (store_limits.hpp): replies of 4 KiB, 8 KiB stored, 2 connections,
//            requests of 16 KiB, a 2 s request timeout; otherwise the defaults
// Each input gets a fresh server, so a failure reproduces from its input alone.
//
// The harness sends the pieces (reading and discarding replies meanwhile, as a slow client would),
// half-closes, and reads until the server closes the connection. Then it checks:
//   - the server closed the fuzz connection within 10 s (no hang)
//   - a fresh StoreClient (with the token, when there is one) connects and gets correct answers
//     to ADD, SET/GET, CHECK, WAIT, COMPARE_SET and DELETE, and to a protected key
//   - the server then has exactly that one connection and no waiting one
//   - under tight caps: the table never holds more than max_stored_bytes; when the fuzz input left
//     too little room for the check's writes, a write is refused (that client closed) and a fresh
//     client is still served
// Allowed: nothing. The server must not crash, abort, or report through a sanitizer, and no
// exception may reach the harness (the server's own exceptions stay inside it).
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_target.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "store/store_auth.hpp"
#include "store/store_client.hpp"
#include "store/store_protocol.hpp"
#include "store/store_server.hpp"

namespace ds::fuzz {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto k_patience = std::chrono::seconds(10);
constexpr const char* k_token = "fuzz-job-token";

// A raw, non-blocking connection to the server under test. Every wait has a deadline; running
// past it is a Failure (the server hung).
class RawConnection {
 public:
  explicit RawConnection(uint16_t port) {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    DS_FUZZ_REQUIRE(m_fd >= 0, std::string("socket: ") + std::strerror(errno));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    DS_FUZZ_REQUIRE(::connect(m_fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0,
                    std::string("cannot connect to the server under test: ") + std::strerror(errno));
    const int one = 1;
    ::setsockopt(m_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::fcntl(m_fd, F_SETFL, ::fcntl(m_fd, F_GETFL) | O_NONBLOCK);
  }
  ~RawConnection() {
    // Reset instead of FIN: no TIME_WAIT socket per fuzz input.
    const linger reset{1, 0};
    ::setsockopt(m_fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    ::close(m_fd);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Sends bytes, reading (into received()) whatever the server replies meanwhile, so that neither
  // side blocks on a full socket buffer. Stops early, without error, once the server has closed.
  void send(std::string_view bytes) {
    const auto deadline = Clock::now() + k_patience;
    while (!bytes.empty() && !m_peer_closed) {
      pollfd p{m_fd, POLLIN | POLLOUT, 0};
      wait(p, deadline, "send");
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) read_available();
      if (m_peer_closed || !(p.revents & POLLOUT)) continue;
      const ssize_t n = ::send(m_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
      } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        m_peer_closed = true;  // EPIPE, ECONNRESET: the server closed on us
      }
    }
  }

  // Waits until n more reply bytes have arrived (or the server closed); returns them.
  std::string receive(size_t n) {
    const auto deadline = Clock::now() + k_patience;
    while (m_received.size() - m_taken < n && !m_peer_closed) {
      pollfd p{m_fd, POLLIN, 0};
      wait(p, deadline, "a reply");
      read_available();
    }
    const std::string out = m_received.substr(m_taken, n);
    m_taken += out.size();
    return out;
  }

  // Half-closes and reads until the server closes the connection.
  void finish() {
    ::shutdown(m_fd, SHUT_WR);
    const auto deadline = Clock::now() + k_patience;
    while (!m_peer_closed) {
      pollfd p{m_fd, POLLIN, 0};
      wait(p, deadline, "the server to close the connection after the client's EOF");
      read_available();
    }
  }

  // The server closed the connection (EOF or reset).
  bool peer_closed() const { return m_peer_closed; }

 private:
  void wait(pollfd& p, Clock::time_point deadline, const char* what) {
    while (true) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      DS_FUZZ_REQUIRE(left > 0, std::string("the server hung: no progress within 10 s waiting for ") + what);
      const int ready = ::poll(&p, 1, static_cast<int>(left));
      if (ready > 0) return;
      DS_FUZZ_REQUIRE(ready == 0 || errno == EINTR, std::string("poll: ") + std::strerror(errno));
    }
  }

  void read_available() {
    char buffer[65536];
    while (true) {
      const ssize_t n = ::recv(m_fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        m_received.append(buffer, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n < 0 && errno == EINTR) continue;
      m_peer_closed = true;  // 0: EOF; otherwise a reset
      return;
    }
  }

  int m_fd = -1;
  bool m_peer_closed = false;
  std::string m_received;
  size_t m_taken = 0;
};

struct Mode {
  bool send_validate = false;
  bool authenticate = false;
  bool server_token = true;
  bool require_auth = false;
  size_t max_piece = 0;  // 0: everything at once
  bool tight_caps = false;

  explicit Mode(uint8_t bits) {
    authenticate = bits & 0x02;
    send_validate = (bits & 0x01) || authenticate;
    server_token = !(bits & 0x04);
    require_auth = server_token && (bits & 0x08);
    static constexpr size_t k_pieces[] = {1, 7, 64, 0};
    max_piece = k_pieces[(bits >> 4) & 0x03];
    tight_caps = bits & 0x40;
  }
};

// VALIDATE, then the token handshake of store_auth.hpp, done by hand on the raw connection.
void authenticate(RawConnection& c, bool server_has_token) {
  store::WireWriter challenge;
  challenge.query(store::QueryType::auth_challenge);
  c.send(challenge.data());
  const std::string length = c.receive(8);
  store::WireReader length_reader(length);
  uint64_t nonce_size = 0;
  DS_FUZZ_REQUIRE(length_reader.u64(nonce_size), "no reply to AUTH_CHALLENGE");
  DS_FUZZ_REQUIRE(nonce_size == (server_has_token ? store::k_auth_nonce_bytes : 0), "a nonce of the wrong size");
  if (nonce_size == 0) return;  // no token: nothing to prove
  const std::string nonce = c.receive(nonce_size);
  store::WireWriter response;
  response.query(store::QueryType::auth_response);
  response.bytes(store::auth_proof(k_token, nonce));
  c.send(response.data());
  DS_FUZZ_REQUIRE(c.receive(1) == std::string(1, static_cast<char>(store::AuthResponse::accepted)),
                  "the server rejected the right token");
}

void send_in_pieces(RawConnection& c, std::string_view bytes, size_t max_piece, Random& random) {
  while (!bytes.empty() && !c.peer_closed()) {
    const size_t n = max_piece == 0 ? bytes.size() : std::min(bytes.size(), random.between_1_and(max_piece));
    c.send(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
}

constexpr store::StoreLimits k_tight_caps{.max_reply_bytes = 4096,
                                          .max_stored_bytes = 8192,
                                          .max_connections = 2,
                                          .max_request_bytes = 16384,
                                          .request_timeout = std::chrono::seconds(2)};
// What the well-behaved client stores at most (keys and values of the checks below).
constexpr size_t k_check_bytes = 256;

// A client that follows the protocol must get correct answers after whatever came before.
void check_serves_well_behaved_client(store::StoreServer& server, const Mode& mode) {
  if (mode.tight_caps) {
    DS_FUZZ_REQUIRE(server.stored_bytes() <= k_tight_caps.max_stored_bytes,
                    "the table holds " + std::to_string(server.stored_bytes()) + " bytes, over max_stored_bytes");
  }
  store::StoreClientOptions options;
  options.port = server.port();
  options.token = mode.server_token ? k_token : "";
  options.timeout = k_patience;
  options.connect_timeout = k_patience;
  if (mode.tight_caps && server.stored_bytes() + k_check_bytes > k_tight_caps.max_stored_bytes) {
    // No room for the checks' writes: a write must be refused, and the store must still serve.
    {
      store::StoreClient full(options);
      bool refused = false;
      try {
        full.set("fuzz-check/too-much", std::string(k_check_bytes, 'x'));
        full.num_keys();  // the reply that shows whether the SET was taken
      } catch (const StoreError&) {
        refused = true;
      }
      DS_FUZZ_REQUIRE(refused, "a SET past max_stored_bytes was not refused");
    }
    store::StoreClient client(options);
    DS_FUZZ_REQUIRE(!client.check({"fuzz-check/too-much"}), "a refused SET was stored");
    DS_FUZZ_REQUIRE(server.num_connections() == 1, "the server counts " + std::to_string(server.num_connections()) +
                                                       " connections, not 1, after a refusal");
    return;
  }
  store::StoreClient client(options);

  const std::string counter = "fuzz-check/counter", key = "fuzz-check/key";
  const std::string value("value\0with a NUL", 16);
  client.delete_key(counter);
  DS_FUZZ_REQUIRE(client.add(counter, 5) == 5, "ADD after DELETE_KEY does not start from 0");
  DS_FUZZ_REQUIRE(client.add(counter, -2) == 3, "ADD does not add");
  client.set(key, value);
  DS_FUZZ_REQUIRE(client.get(key) == value, "GET does not return what SET stored");
  DS_FUZZ_REQUIRE(client.check({key, counter}), "CHECK does not see set keys");
  client.wait({key, counter}, k_patience);
  DS_FUZZ_REQUIRE(client.compare_set(key, value, "swapped") == "swapped", "COMPARE_SET does not swap an equal value");
  DS_FUZZ_REQUIRE(client.try_get(key) == std::optional<std::string>("swapped"), "COMPARE_SET's value is not stored");
  DS_FUZZ_REQUIRE(client.delete_key(key), "DELETE_KEY does not find a set key");
  DS_FUZZ_REQUIRE(!client.check({key}), "CHECK sees a deleted key");
  if (mode.server_token) {
    client.set("dslaunch/fuzz-check", "protected");
    DS_FUZZ_REQUIRE(client.get("dslaunch/fuzz-check") == "protected", "an authenticated client cannot use dslaunch/ keys");
  }
  // Counted after a round trip of this client, so the io thread has handled the fuzz connection's
  // close (it happened before this client connected).
  DS_FUZZ_REQUIRE(server.num_connections() == 1,
                  "the server counts " + std::to_string(server.num_connections()) + " connections, not 1");
  DS_FUZZ_REQUIRE(server.num_waiting() == 0,
                  "the server counts " + std::to_string(server.num_waiting()) + " waiting connections after they closed");
}

}  // namespace

void store_server_one_input(std::string_view input) {
  static const bool quiet = [] {
    log::set_level(log::Level::off);  // every violation would log a line
    return true;
  }();
  (void)quiet;
  if (input.empty()) return;
  const Mode mode(static_cast<uint8_t>(input[0]));
  const std::string_view bytes = input.substr(1);

  store::StoreServerOptions options;
  options.bind_host = "127.0.0.1";
  options.port = 0;
  options.token = mode.server_token ? k_token : "";
  options.require_auth = mode.require_auth;
  options.backlog = 64;
  if (mode.tight_caps) options.limits = k_tight_caps;
  store::StoreServer server(options);
  {
    RawConnection fuzz(server.port());
    if (mode.send_validate) {
      store::WireWriter validate;
      validate.query(store::QueryType::validate);
      validate.u32(store::k_validation_magic);
      fuzz.send(validate.data());
    }
    if (mode.authenticate) authenticate(fuzz, mode.server_token);
    Random random(hash_of(input));
    send_in_pieces(fuzz, bytes, mode.max_piece, random);
    fuzz.finish();
  }
  check_serves_well_behaved_client(server, mode);
}

}  // namespace ds::fuzz

DS_FUZZ_TARGET(store_server, ds::fuzz::store_server_one_input)
