// The rendezvous store client: a KeyValueStore over one TCP connection to a StoreServer (or to
// torch's own TCPStore server: the protocol is torch 2.11's, store_protocol.hpp).
//
// Keys are sent exactly as given. Torch's client prefixes every key with '/' (a torch worker's
// set("x") is key "/x" here) and the process group's PrefixStore adds more; a native client that
// wants to read a torch worker's key must spell it the way it appears on the wire.
//
// Threads: every method may be called from several threads; one mutex serialises them on the one
// connection, because the protocol matches replies to requests by order. A blocking wait (get,
// wait, multi_get, barrier, blocking queue_pop) holds the connection until it ends or times out,
// so other threads' calls on the same client queue behind it; give a thread that must not be held
// up its own StoreClient.
//
// Errors:
//   RendezvousError   the store cannot be reached before connect_timeout (naming host:port and
//                     what to check), or it rejected the job token
//   RendezvousTimeout a wait ran out of time (naming the missing keys and the timeout)
//   StoreError        the connection broke mid-request (naming the operation and key), or the
//                     store did not answer within timeout. The client is unusable afterwards
//                     (every later call throws StoreError); make a new one to reconnect.
// SET-like calls (set, append, multi_set, queue_push) have no reply in the protocol: a server
// that died after receiving one is noticed by the next call that reads a reply.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/kv_store.hpp"
#include "store/store_protocol.hpp"
#include "store/tcp_connection.hpp"

namespace ds::store {

struct StoreClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = k_default_store_port;
  // The job token; empty for none. With a token the client authenticates right after connecting.
  std::string token{};
  // Default wait for get()/wait()/barrier, and the longest the client waits for any reply.
  std::chrono::milliseconds timeout{std::chrono::seconds(300)};
  // How long to keep trying to connect (refused connections are retried with exponential
  // backoff and jitter: the server may still be starting).
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(300)};
};

// Whether queue_pop waits for an element.
enum class QueueWait { no, yes };

class StoreClient final : public KeyValueStore {
 public:
  using Options = StoreClientOptions;

  // Connects (retrying until connect_timeout), sends VALIDATE and PING like torch's client, and
  // authenticates when options.token is set. Blocks; throws as listed above.
  explicit StoreClient(Options options);
  ~StoreClient() override;

  // KeyValueStore (kv_store.hpp).
  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key) override;  // WAIT then GET, as torch does
  std::optional<std::string> try_get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  // Sends CANCEL_WAIT on timeout (as torch does), so the connection stays usable.
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) override;
  bool delete_key(const std::string& key) override;
  std::chrono::milliseconds timeout() const override { return m_options.timeout; }

  // Torch's compare_set: see store_server.hpp for its three cases. Returns the value after it.
  std::string compare_set(const std::string& key, const std::string& expected, const std::string& desired);
  void append(const std::string& key, const std::string& bytes);
  // Waits (up to timeout()) for every key, then returns their values in order.
  std::vector<std::string> multi_get(const std::vector<std::string>& keys);
  void multi_set(const std::vector<std::string>& keys, const std::vector<std::string>& values);
  int64_t num_keys();
  std::vector<std::string> list_keys();
  void queue_push(const std::string& queue, const std::string& value);
  // The oldest element, or nullopt when the queue is empty (QueueWait::no). With QueueWait::yes
  // waits up to timeout() for one; throws RendezvousTimeout naming the queue.
  std::optional<std::string> queue_pop(const std::string& queue, QueueWait wait);
  int64_t queue_len(const std::string& queue);

  // Every rank of world_size calls this with its rank; returns when all have (store_barrier.hpp).
  void barrier(const std::string& name, int world_size, int rank, std::chrono::milliseconds timeout);

  const std::string& host() const { return m_options.host; }
  uint16_t port() const { return m_options.port; }
  bool authenticated() const { return m_authenticated; }

 private:
  void connect();
  void handshake(SteadyTime deadline);
  // Runs fn(deadline) on the connection under the mutex; converts transport failures into a
  // StoreError naming op and keys, and marks the connection broken.
  template <typename Fn>
  auto run(const char* op, const std::vector<std::string>& keys, Fn&& fn);
  // WAIT for keys; false on timeout (after cancelling the wait on the server). Caller holds the mutex.
  bool wait_locked(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  std::string endpoint() const;

  Options m_options;
  std::mutex m_mutex;
  TcpConnection m_connection;
  bool m_authenticated = false;
  std::string m_broken;  // why the connection is unusable; empty while it is fine
};

}  // namespace ds::store
