// The rendezvous store server: an in-memory key-value store that speaks torch 2.11's TCPStore
// protocol (store_protocol.hpp), so unmodified torch workers can rendezvous through it
// (TORCHELASTIC_USE_AGENT_STORE=True, as torchrun hosts its store), plus a job-token handshake
// for native clients (store_auth.hpp).
//
// Threads: one io thread (Boost.Asio) serves every connection; waits are event-driven (a WAIT
// is answered from the SET that completes it, never by polling). The in-process methods below
// may be called from any thread.
//
// Semantics, as torch's libuv server (torch/csrc/distributed/c10d/TCPStoreLibUvBackend.cpp):
//   - A connection's first command must be VALIDATE with the magic. Torch's server ignores an
//     unvalidated connection's commands; ours closes it instead, so the peer sees EOF at once
//     rather than hanging. A second VALIDATE, an unknown command byte, a length over the limits
//     (key 8 KiB, value 8 MiB, 128 Ki keys) or an ADD on a value that is not decimal text closes
//     that connection too (logged with the peer's address); the server carries on.
//   - SET, APPEND, MULTI_SET and QUEUE_PUSH have no reply. GET of a missing key replies "".
//   - ADD keeps the counter as decimal ASCII ("12"), creating it at 0; replies the new value.
//   - COMPARE_SET(key, expected, desired): key missing and expected == "" → set to desired;
//     key missing and expected != "" → nothing is stored and the reply is `expected` (torch's
//     documented quirk); key present and equal to expected → replaced by desired. The reply is
//     the value after the operation.
//   - CHECK/WAIT treat a key as present if it is set or names a non-empty queue. WAIT replies
//     STOP_WAITING once every key is present; CANCEL_WAIT drops this connection's wait and replies
//     WAIT_CANCELED (a client may first read a STOP_WAITING that crossed it on the wire).
//   - QUEUE_PUSH wakes one waiter of that queue; QUEUE_POP never blocks.
//   - MULTI_GET replies "" for missing keys (torch's client WAITs first).
//
// Our additions (research/launcher-anchors.md §4-5):
//   - Binds only bind_host (default loopback), never every interface unless asked ("0.0.0.0"/"::").
//   - With a token, keys in the protected namespaces (store_namespaces.hpp: "dslaunch/",
//     "dsworker/") are usable only by connections that proved the token; an unauthenticated
//     connection naming one in any command is closed. LIST_KEYS and GETNUMKEYS on an
//     unauthenticated connection do not see them. All other keys behave exactly as in torch's store
//     (torch clients cannot authenticate).
//   - require_auth: every command but VALIDATE, PING and the handshake needs the token, and a
//     connection that has not proved it within request_timeout is dropped.
//   - Caps (store_limits.hpp): reply bytes (sized before the reply is built), stored bytes,
//     connections, request bytes, and a deadline on partial requests, handshakes and unread
//     replies. Passing one closes that client's connection with one log line naming its address
//     and the cap; every other client goes on.
//   - Requests are parsed incrementally (request_parser.hpp): each received byte is examined once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/store_limits.hpp"

namespace ds::store {

struct StoreServerOptions {
  // Address to listen on: an IP literal or a host name of this machine. "0.0.0.0" or "::" listen
  // on every interface; only ask for that when workers on other hosts must connect.
  std::string bind_host = "127.0.0.1";
  // 0 picks a free port; StoreServer::port() tells which.
  uint16_t port = 0;
  // The job secret (generate_token()). Empty: no authentication, "dslaunch/" keys are open too.
  std::string token{};
  // Refuse every command from a connection that has not proved the token (torch clients then
  // cannot use this store). Needs a token.
  bool require_auth = false;
  // Listen backlog; the kernel caps it at net.core.somaxconn.
  int backlog = 16384;
  // Caps against hostile or buggy clients (defaults in store_limits.hpp, docs/store.md).
  StoreLimits limits{};
};

class StoreServer {
 public:
  using Options = StoreServerOptions;

  // Binds, listens and starts the io thread; the store is serving when this returns.
  // Throws PortInUse (naming host:port, the holder when visible, and the fix) when the port is
  // taken; RendezvousError when bind_host is not an address of this machine or cannot be
  // resolved; UsageError for require_auth without a token.
  // Raises this process's RLIMIT_NOFILE soft limit to the hard limit (thousands of connections).
  explicit StoreServer(Options options);
  ~StoreServer();  // stop()
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  uint16_t port() const;
  const std::string& host() const;  // bind_host as given

  // In-process access for the hosting launcher; callable from any thread, also after stop().
  // set() wakes waiting clients like a SET from the network (and is allowed on "dslaunch/" keys).
  void set(const std::string& key, const std::string& value);
  std::optional<std::string> try_get(const std::string& key) const;
  int64_t num_keys() const;               // all keys, "dslaunch/" ones included (queues are not keys)
  std::vector<std::string> list_keys() const;
  std::size_t num_connections() const;    // open client connections right now
  std::size_t num_waiting() const;        // connections blocked in a WAIT right now (hang diagnosis)
  std::size_t stored_bytes() const;       // what max_stored_bytes counts, right now
  uint64_t refusals(StoreCap cap) const;  // clients refused at this cap so far

  // Closes the listener and every connection, then joins the io thread. Idempotent. Must not be
  // called from the io thread.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> m_impl;
};

}  // namespace ds::store
