// What users see when the store cannot be reached, is taken, dies or hangs: typed errors with
// messages that name the place and the fix, quickly, never a hang.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "base/error.hpp"
#include "store/store_client.hpp"
#include "store/store_server.hpp"
#include "support/skip.hpp"

using namespace ds;
using namespace ds::store;
using namespace std::chrono_literals;

namespace {

// A listening socket on 127.0.0.1, held by this process; port() is where.
class HeldPort {
 public:
  HeldPort() {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(m_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(m_fd, 1) == 0);
    socklen_t len = sizeof(address);
    ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&address), &len);
    m_port = ntohs(address.sin_port);
  }
  ~HeldPort() { close(); }
  void close() {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
  }
  uint16_t port() const { return m_port; }

 private:
  int m_fd = -1;
  uint16_t m_port = 0;
};

// A StoreServer in a forked child, so that it can be killed or stopped like a real launcher.
class ServerProcess {
 public:
  ServerProcess() {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    m_pid = ::fork();
    REQUIRE(m_pid >= 0);
    if (m_pid == 0) {
      ::close(pipe_fds[0]);
      try {
        StoreServer server({});
        uint16_t port = server.port();
        (void)!::write(pipe_fds[1], &port, sizeof(port));
        // Report (one byte) once a client is blocked in a WAIT; then wait to be killed.
        while (server.num_waiting() == 0) std::this_thread::sleep_for(1ms);
        (void)!::write(pipe_fds[1], "w", 1);
        for (;;) ::pause();
      } catch (...) {
        ::_exit(3);
      }
    }
    ::close(pipe_fds[1]);
    m_pipe = pipe_fds[0];
    REQUIRE(::read(m_pipe, &m_port, sizeof(m_port)) == sizeof(m_port));
  }
  ~ServerProcess() {
    ::kill(m_pid, SIGKILL);
    ::kill(m_pid, SIGCONT);
    ::waitpid(m_pid, nullptr, 0);
    ::close(m_pipe);
  }
  uint16_t port() const { return m_port; }
  pid_t pid() const { return m_pid; }
  // Blocks until a client is waiting in a WAIT on the server.
  void await_waiter() {
    char byte = 0;
    REQUIRE(::read(m_pipe, &byte, 1) == 1);
  }

 private:
  pid_t m_pid = -1;
  int m_pipe = -1;
  uint16_t m_port = 0;
};

}  // namespace

TEST_CASE("binding a port in use throws PortInUse naming the address, the holder and the fix") {
  HeldPort held;
  const std::string pid = std::to_string(::getpid());
  CHECK_THROWS_MATCHES(StoreServer({.bind_host = "127.0.0.1", .port = held.port()}), PortInUse,
                       Catch::Message("cannot start the rendezvous store on 127.0.0.1:" + std::to_string(held.port()) +
                                      ": the port is already in use, held by pid " + pid +
                                      " (test_store). Pass --master_port=0 to pick a free port, or choose another port."));
}

TEST_CASE("a port held by another program names that program") {
  // python3 holds the port: a program other than this one, whose name the message must show.
  if (const auto why = ds::test::why_no_python3_at_least(3, 0)) DS_SKIP(*why + ": nothing else here can hold a port");
  int out[2];
  REQUIRE(::pipe(out) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::dup2(out[1], 1);
    ::execlp("python3", "python3", "-c",
             "import socket,time\n"
             "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n"
             "print(s.getsockname()[1], flush=True); time.sleep(60)",
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  char line[32] = {};
  const ssize_t n = ::read(out[0], line, sizeof(line) - 1);
  ::close(out[0]);
  const int port = n > 0 ? std::atoi(line) : 0;
  if (port == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    FAIL("python3 runs here but did not print the port it holds");
  }
  CHECK_THROWS_WITH(StoreServer({.port = static_cast<uint16_t>(port)}),
                    Catch::Contains("held by pid " + std::to_string(child) + " (python3)"));
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST_CASE("a bind address that is not this machine's is a RendezvousError saying so") {
  CHECK_THROWS_WITH(StoreServer({.bind_host = "192.0.2.1"}),  // TEST-NET-1: never local
                    Catch::Contains("The bind address must belong to this machine"));
  CHECK_THROWS_AS(StoreServer({.bind_host = "no-such-host.invalid"}), RendezvousError);
}

TEST_CASE("a store that never comes up is a RendezvousError naming host:port and what to check") {
  HeldPort free_port;
  const uint16_t port = free_port.port();
  free_port.close();  // nothing listens there now: connections are refused
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_MATCHES(StoreClient({.host = "127.0.0.1", .port = port, .connect_timeout = 300ms}), RendezvousError,
                       Catch::Message("cannot reach the rendezvous store at 127.0.0.1:" + std::to_string(port) +
                                      " within 300 ms (last error: Connection refused). Check that the launcher "
                                      "(dslaunch) is running and its store listens there, that the address and port "
                                      "(MASTER_ADDR/MASTER_PORT) are this job's, and that no firewall blocks the port"));
  CHECK(std::chrono::steady_clock::now() - start < 10s);
}

TEST_CASE("a client retries refused connections until the server starts") {
  HeldPort reserved;
  const uint16_t port = reserved.port();
  reserved.close();
  std::unique_ptr<StoreServer> server;
  std::thread starter([&] {
    std::this_thread::sleep_for(200ms);  // the client is refused meanwhile; no assertion on timing
    server = std::make_unique<StoreServer>(StoreServerOptions{.port = port});
  });
  StoreClient client({.port = port, .connect_timeout = 30s});
  starter.join();
  client.set("k", "v");
  CHECK(client.get("k") == "v");
  CHECK(server->try_get("k") == "v");
}

TEST_CASE("a server killed while a client waits in get gives a StoreError at once, not a hang") {
  ServerProcess server;
  StoreClient client({.port = server.port(), .timeout = 120s, .connect_timeout = 10s});
  std::thread killer([&] {
    server.await_waiter();  // the client's WAIT has reached the server
    ::kill(server.pid(), SIGKILL);
  });
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_MATCHES(client.get("never/set"), StoreError,
                       Catch::Message("lost the connection to the store at 127.0.0.1:" + std::to_string(server.port()) +
                                      " during get('never/set'): the peer closed the connection. The store server "
                                      "exited (did the launcher stop?) or closed this connection (it does so for a request past "
                                      "one of its caps, which the launcher's log names); if the store "
                                      "requires the job token (require_auth), pass it"));
  killer.join();
  CHECK(std::chrono::steady_clock::now() - start < 60s);  // far below the 120 s timeout
  // The client knows its connection is gone.
  CHECK_THROWS_WITH(client.add("k", 1), Catch::StartsWith("cannot add('k') on the store at 127.0.0.1:") &&
                                            Catch::Contains("create a new StoreClient to reconnect"));
}

TEST_CASE("a hung server gives a StoreError after the client's timeout") {
  ServerProcess server;
  StoreClient client({.port = server.port(), .timeout = 300ms, .connect_timeout = 10s});
  ::kill(server.pid(), SIGSTOP);
  int status = 0;
  REQUIRE(::waitpid(server.pid(), &status, WUNTRACED) == server.pid());  // stopped for sure
  REQUIRE(WIFSTOPPED(status));
  CHECK_THROWS_MATCHES(client.add("k", 1), StoreError,
                       Catch::Message("no reply from the store at 127.0.0.1:" + std::to_string(server.port()) +
                                      " to add('k') within 300 ms: the store server is hung or the network path to "
                                      "it is broken"));
}

TEST_CASE("stop() closes every connection and clients see it") {
  StoreServer server({});
  StoreClient client({.port = server.port(), .timeout = 60s});
  client.set("a", "1");
  CHECK(client.get("a") == "1");
  server.stop();
  server.stop();  // idempotent
  CHECK_THROWS_AS(client.get("a"), StoreError);
  CHECK(server.try_get("a") == "1");  // in-process access still works
}
