#include "store/store_server.hpp"

#include <pthread.h>
#include <sys/resource.h>

#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <cerrno>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "base/check.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "store/port_holder.hpp"
#include "store/sha256.hpp"
#include "store/store_auth.hpp"
#include "store/store_protocol.hpp"
#include "store/store_table.hpp"

namespace ds::store {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

std::string format_endpoint(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// Thousands of connections need thousands of descriptors; the soft limit is often 1024.
void raise_open_file_limit() {
  static std::once_flag once;
  std::call_once(once, [] {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
      log::warn("store: cannot raise the open-file limit to ", limit.rlim_max, ": ", std::strerror(errno));
  });
}

class Connection;

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

// A connection's registration as a waiter of one key; wait_id tells a live wait from an ended one.
struct Waiter {
  std::shared_ptr<Connection> connection;
  uint64_t wait_id;
};

}  // namespace

struct StoreServer::Impl {
  explicit Impl(Options opts) : options(std::move(opts)) {}

  // Everything below runs on the io thread, except where noted.
  void start_accept();
  void execute(Connection& connection, Request& request);
  void key_changed(const std::string& key);         // wake every waiter that is now satisfied
  void queue_pushed(const std::string& queue);      // wake the first waiter that is now satisfied
  void begin_wait(Connection& connection, std::vector<std::string> keys);
  void end_wait(Connection& connection);            // drop the connection's wait, if any
  void register_missing(Connection& connection);
  void forget(Connection& connection);              // the connection closed

  Options options;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};
  std::thread thread;
  std::mutex stop_mutex;  // makes stop() idempotent across threads
  uint16_t port = 0;
  StoreTable table;  // thread-safe
  std::unordered_set<std::shared_ptr<Connection>> connections;
  std::atomic<std::size_t> connection_count{0};
  std::atomic<std::size_t> waiting_count{0};  // connections with wait_id != 0
  std::unordered_map<std::string, std::vector<Waiter>> waiters;  // key -> connections waiting for it
  uint64_t next_wait_id = 1;
};

namespace {

// One client connection. Owned by Impl::connections while open and by its pending handlers.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(StoreServer::Impl& server, tcp::socket socket) : m_server(server), m_socket(std::move(socket)) {
    boost::system::error_code ec;
    auto remote = m_socket.remote_endpoint(ec);
    peer = ec ? std::string("unknown peer") : format_endpoint(remote.address().to_string(), remote.port());
    m_socket.set_option(tcp::no_delay(true), ec);
  }

  void start() { read_more(); }

  // Queues bytes for the peer. Replies made while a batch of requests is being executed go out
  // together when the batch ends; others (wake-ups) go out at once.
  void send(std::string_view bytes) {
    if (closed) return;
    m_out_pending.append(bytes.data(), bytes.size());
    if (!m_in_batch) flush();
  }

  // Stops reading; closes once queued replies are written.
  void close_after_flush() {
    m_closing = true;
    if (!m_out_pending.empty())
      flush();  // its completion closes
    else if (!m_writing)
      close();
  }

  void close() {
    if (closed) return;
    closed = true;
    boost::system::error_code ec;
    m_socket.shutdown(tcp::socket::shutdown_both, ec);
    m_socket.close(ec);
    m_server.forget(*this);
  }

  std::string peer;
  bool closed = false;
  bool validated = false;
  bool authenticated = false;
  std::string nonce;  // of the pending AUTH_CHALLENGE
  // The pending WAIT: its keys, its id (0: none) and the keys it is registered under.
  uint64_t wait_id = 0;
  std::vector<std::string> wait_keys;
  std::unordered_set<std::string> wait_registered;

 private:
  void read_more() {
    m_socket.async_read_some(asio::buffer(m_read_buffer),
                             [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                               if (ec) {
                                 self->close();
                                 return;
                               }
                               self->m_in.append(self->m_read_buffer.data(), n);
                               self->process();
                               if (!self->closed && !self->m_closing) self->read_more();
                             });
  }

  // Executes every complete request in m_in, in order.
  void process() {
    std::size_t offset = 0;
    m_in_batch = true;
    try {
      while (!m_closing && !closed) {
        const std::string_view rest(m_in.data() + offset, m_in.size() - offset);
        const auto size = decode_request(rest, nullptr);  // measure first: no copies while partial
        if (!size) break;
        decode_request(rest, &m_request);
        offset += *size;
        m_server.execute(*this, m_request);
      }
    } catch (const ProtocolViolation& violation) {
      log::warn("store: closing the connection from ", peer, ": ", violation.what());
      m_closing = true;
    } catch (const std::exception& failure) {  // out of memory, no randomness: this peer loses, not all
      log::error("store: closing the connection from ", peer, " after an internal failure: ", failure.what());
      m_closing = true;
    }
    m_in.erase(0, offset);
    m_in_batch = false;
    if (m_closing)
      close_after_flush();
    else if (!m_out_pending.empty())
      flush();
  }

  void flush() {
    if (m_writing || closed || m_out_pending.empty()) return;
    m_writing = true;
    m_out_inflight.swap(m_out_pending);
    m_out_pending.clear();
    asio::async_write(m_socket, asio::buffer(m_out_inflight),
                      [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                        self->m_writing = false;
                        self->m_out_inflight.clear();
                        if (ec) {
                          self->close();
                          return;
                        }
                        if (!self->m_out_pending.empty())
                          self->flush();
                        else if (self->m_closing)
                          self->close();
                      });
  }

  StoreServer::Impl& m_server;
  tcp::socket m_socket;
  std::array<char, 8192> m_read_buffer;
  std::string m_in;  // received bytes not yet executed (at most one partial request)
  Request m_request;
  std::string m_out_pending;   // replies not yet handed to the socket
  std::string m_out_inflight;  // the replies async_write is sending
  bool m_writing = false;
  bool m_in_batch = false;
  bool m_closing = false;
};

}  // namespace

// ---- waits -------------------------------------------------------------------------------------

void StoreServer::Impl::register_missing(Connection& connection) {
  for (auto& key : table.missing(connection.wait_keys)) {
    if (connection.wait_registered.insert(key).second)
      waiters[key].push_back({connection.shared_from_this(), connection.wait_id});
  }
}

void StoreServer::Impl::begin_wait(Connection& connection, std::vector<std::string> keys) {
  end_wait(connection);  // a client waits for one thing at a time; a new WAIT replaces the old
  if (table.all_present(keys)) {
    WireWriter reply;
    reply.u8(static_cast<uint8_t>(WaitResponse::stop_waiting));
    connection.send(reply.data());
    return;
  }
  connection.wait_id = next_wait_id++;
  waiting_count.fetch_add(1, std::memory_order_relaxed);
  connection.wait_keys = std::move(keys);
  register_missing(connection);
}

void StoreServer::Impl::end_wait(Connection& connection) {
  if (connection.wait_id == 0) return;
  for (const auto& key : connection.wait_registered) {
    auto it = waiters.find(key);
    if (it == waiters.end()) continue;
    std::erase_if(it->second, [&](const Waiter& w) { return w.connection.get() == &connection; });
    if (it->second.empty()) waiters.erase(it);
  }
  connection.wait_id = 0;
  waiting_count.fetch_sub(1, std::memory_order_relaxed);
  connection.wait_keys.clear();
  connection.wait_registered.clear();
}

void StoreServer::Impl::key_changed(const std::string& key) {
  auto it = waiters.find(key);
  if (it == waiters.end()) return;
  std::vector<Waiter> list = std::move(it->second);
  waiters.erase(it);
  for (auto& waiter : list) {
    Connection& connection = *waiter.connection;
    if (connection.closed || connection.wait_id != waiter.wait_id) continue;
    connection.wait_registered.erase(key);
    if (table.all_present(connection.wait_keys)) {
      end_wait(connection);
      WireWriter reply;
      reply.u8(static_cast<uint8_t>(WaitResponse::stop_waiting));
      connection.send(reply.data());
    } else {
      register_missing(connection);  // this key may be gone again, others still missing
    }
  }
}

void StoreServer::Impl::queue_pushed(const std::string& queue) {
  auto it = waiters.find(queue);
  if (it == waiters.end()) return;
  for (auto& waiter : it->second) {
    Connection& connection = *waiter.connection;
    if (connection.closed || connection.wait_id != waiter.wait_id) continue;
    if (!table.all_present(connection.wait_keys)) continue;
    auto keep_alive = waiter.connection;
    end_wait(connection);  // removes it from this list (and may erase the list)
    WireWriter reply;
    reply.u8(static_cast<uint8_t>(WaitResponse::stop_waiting));
    keep_alive->send(reply.data());
    return;  // one element, one waiter
  }
}

void StoreServer::Impl::forget(Connection& connection) {
  end_wait(connection);
  auto self = connection.shared_from_this();
  if (connections.erase(self)) connection_count.fetch_sub(1, std::memory_order_relaxed);
}

// ---- commands ----------------------------------------------------------------------------------

void StoreServer::Impl::execute(Connection& connection, Request& request) {
  const QueryType type = request.type;
  const auto name = [&] { return query_type_name(static_cast<uint8_t>(type)); };
  if (!connection.validated) {
    if (type != QueryType::validate)
      throw ProtocolViolation("its first command was " + name() + ", not VALIDATE (not a TCPStore client?)");
    if (request.number != k_validation_magic)
      throw ProtocolViolation("VALIDATE carried magic " + hex32(request.number) + ", not " + hex32(k_validation_magic) +
                              " (not a TCPStore client?)");
    connection.validated = true;
    return;
  }

  WireWriter reply;
  switch (type) {
    case QueryType::validate:
      throw ProtocolViolation("VALIDATE sent twice");
    case QueryType::ping:
      reply.u32(request.number);
      connection.send(reply.data());
      return;
    case QueryType::auth_challenge:
      connection.nonce = options.token.empty() ? std::string() : random_bytes(k_auth_nonce_bytes);
      reply.bytes(connection.nonce);
      connection.send(reply.data());
      return;
    case QueryType::auth_response: {
      if (connection.nonce.empty()) throw ProtocolViolation("AUTH_RESPONSE without a pending AUTH_CHALLENGE");
      const bool accepted = constant_time_equal(request.values[0], auth_proof(options.token, connection.nonce));
      connection.nonce.clear();
      reply.u8(static_cast<uint8_t>(accepted ? AuthResponse::accepted : AuthResponse::rejected));
      connection.send(reply.data());
      if (!accepted) throw ProtocolViolation("it presented a wrong job token");
      connection.authenticated = true;
      return;
    }
    default:
      break;
  }

  // Everything else touches data: apply the authentication rules first.
  const bool has_token = !options.token.empty();
  if (options.require_auth && !connection.authenticated)
    throw ProtocolViolation(name() + " before authenticating (this store requires the job token)");
  if (has_token && !connection.authenticated) {
    for (const auto& key : request.keys)
      if (is_protected_key(key))
        throw ProtocolViolation(name() + " on key '" + key + "', which only clients holding the job token may use");
  }
  const ProtectedKeys visibility =
      (!has_token || connection.authenticated) ? ProtectedKeys::visible : ProtectedKeys::hidden;

  switch (type) {
    case QueryType::set:
      table.set(request.keys[0], std::move(request.values[0]));
      key_changed(request.keys[0]);
      return;
    case QueryType::compare_set:
      reply.bytes(table.compare_set(request.keys[0], request.values[0], std::move(request.values[1])));
      key_changed(request.keys[0]);
      break;
    case QueryType::get:
      reply.bytes(table.get(request.keys[0]).value_or(std::string()));
      break;
    case QueryType::add:
      reply.i64(table.add(request.keys[0], request.delta));
      key_changed(request.keys[0]);
      break;
    case QueryType::check:
      reply.u8(static_cast<uint8_t>(table.all_present(request.keys) ? CheckResponse::ready : CheckResponse::not_ready));
      break;
    case QueryType::wait:
      begin_wait(connection, std::move(request.keys));
      return;
    case QueryType::get_num_keys:
      reply.i64(table.size(visibility));
      break;
    case QueryType::delete_key:
      reply.i64(table.erase(request.keys[0]) ? 1 : 0);
      break;
    case QueryType::append:
      table.append(request.keys[0], request.values[0]);
      key_changed(request.keys[0]);
      return;
    case QueryType::multi_get:
      for (const auto& key : request.keys) reply.bytes(table.get(key).value_or(std::string()));
      break;
    case QueryType::multi_set:
      for (std::size_t i = 0; i < request.keys.size(); ++i) {
        table.set(request.keys[i], std::move(request.values[i]));
        key_changed(request.keys[i]);
      }
      return;
    case QueryType::cancel_wait:
      end_wait(connection);
      reply.u8(static_cast<uint8_t>(WaitResponse::wait_canceled));
      break;
    case QueryType::queue_push:
      table.queue_push(request.keys[0], std::move(request.values[0]));
      queue_pushed(request.keys[0]);
      return;
    case QueryType::queue_pop: {
      auto [length, value] = table.queue_pop(request.keys[0]);
      reply.i64(length);
      if (value) reply.bytes(*value);
      break;
    }
    case QueryType::queue_len:
      reply.i64(table.queue_len(request.keys[0]));
      break;
    case QueryType::list_keys: {
      const auto keys = table.keys(visibility);
      reply.i64(static_cast<int64_t>(keys.size()));
      for (const auto& key : keys) reply.bytes(key);
      break;
    }
    default:
      DS_UNREACHABLE("command ", name(), " passed decode_request but has no handler");
  }
  connection.send(reply.data());
}

// ---- listening ---------------------------------------------------------------------------------

void StoreServer::Impl::start_accept() {
  acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of descriptors or memory: connections wait in the backlog until some close. Retry
      // after a pause instead of spinning on the error.
      log::warn("store: cannot accept a connection: ", ec.message(), "; retrying in 100 ms");
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](const boost::system::error_code& timer_ec) {
        if (!timer_ec) start_accept();
      });
      return;
    }
    auto connection = std::make_shared<Connection>(*this, std::move(socket));
    connections.insert(connection);
    connection_count.fetch_add(1, std::memory_order_relaxed);
    connection->start();
    start_accept();
  });
}

StoreServer::StoreServer(Options options) : m_impl(std::make_unique<Impl>(std::move(options))) {
  Impl& impl = *m_impl;
  const std::string& host = impl.options.bind_host;
  if (impl.options.require_auth && impl.options.token.empty())
    throw UsageError("store option require_auth needs a token: pass the job token (generate_token()) with it");
  raise_open_file_limit();

  boost::system::error_code ec;
  asio::ip::address address = asio::ip::make_address(host, ec);
  if (ec) {
    tcp::resolver resolver(impl.io);
    auto results = resolver.resolve(host, "", ec);
    if (ec || results.empty())
      throw RendezvousError("cannot resolve the store's bind address '" + host + "': " +
                            (ec ? ec.message() : std::string("no addresses")) +
                            ". Pass an IP address or a host name of this machine (--master_addr)");
    address = results.begin()->endpoint().address();
  }
  const tcp::endpoint endpoint(address, impl.options.port);
  const std::string where = format_endpoint(host, impl.options.port);

  impl.acceptor.open(endpoint.protocol(), ec);
  if (ec) throw RendezvousError("cannot open a socket for the store on " + where + ": " + ec.message());
  impl.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);  // restart right after a crash
  impl.acceptor.bind(endpoint, ec);
  if (ec == asio::error::address_in_use) {
    std::string holder = describe_port_holder(impl.options.port);
    throw PortInUse("cannot start the rendezvous store on " + where + ": the port is already in use" +
                    (holder.empty() ? std::string() : ", " + holder) +
                    ". Pass --master_port=0 to pick a free port, or choose another port.");
  }
  if (ec == boost::system::errc::address_not_available)
    throw RendezvousError("cannot start the rendezvous store on " + where + ": " + ec.message() +
                          ". The bind address must belong to this machine (or be 0.0.0.0 for every interface)");
  if (ec) throw RendezvousError("cannot start the rendezvous store on " + where + ": " + ec.message());
  impl.acceptor.listen(impl.options.backlog, ec);
  if (ec) throw RendezvousError("cannot listen on " + where + " for the rendezvous store: " + ec.message());
  impl.port = impl.acceptor.local_endpoint().port();

  impl.start_accept();
  impl.thread = std::thread([&impl] {
    pthread_setname_np(pthread_self(), "ds_store_io");
    // A handler that throws (bad_alloc while accepting, say) must not take the store down: log it
    // and carry on serving; run() can be resumed after an exception.
    for (;;) {
      try {
        impl.io.run();
        return;
      } catch (const std::exception& failure) {
        log::error("store: internal failure on the io thread (serving continues): ", failure.what());
      }
    }
  });
  log::debug("store: listening on ", format_endpoint(host, impl.port));
}

StoreServer::~StoreServer() { stop(); }

void StoreServer::stop() {
  Impl& impl = *m_impl;
  std::lock_guard lock(impl.stop_mutex);
  if (!impl.thread.joinable()) return;
  DS_CHECK(impl.thread.get_id() != std::this_thread::get_id(), "StoreServer::stop() called from its own io thread");
  asio::post(impl.io, [&impl] {
    boost::system::error_code ec;
    impl.acceptor.close(ec);
    impl.accept_retry.cancel();
    const auto open = impl.connections;  // close() erases from the set
    for (const auto& connection : open) connection->close();
    impl.waiters.clear();
    impl.io.stop();
  });
  impl.thread.join();
}

uint16_t StoreServer::port() const { return m_impl->port; }
const std::string& StoreServer::host() const { return m_impl->options.bind_host; }

void StoreServer::set(const std::string& key, const std::string& value) {
  m_impl->table.set(key, value);
  // Waiters live on the io thread; after stop() this post never runs, which is fine: no waiters.
  asio::post(m_impl->io, [impl = m_impl.get(), key] { impl->key_changed(key); });
}

std::optional<std::string> StoreServer::try_get(const std::string& key) const { return m_impl->table.get(key); }
int64_t StoreServer::num_keys() const { return m_impl->table.size(ProtectedKeys::visible); }
std::vector<std::string> StoreServer::list_keys() const { return m_impl->table.keys(ProtectedKeys::visible); }
std::size_t StoreServer::num_connections() const { return m_impl->connection_count.load(std::memory_order_relaxed); }
std::size_t StoreServer::num_waiting() const { return m_impl->waiting_count.load(std::memory_order_relaxed); }

}  // namespace ds::store
