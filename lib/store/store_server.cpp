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
#include "base/format.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "store/port_holder.hpp"
#include "store/request_parser.hpp"
#include "store/sha256.hpp"
#include "store/store_auth.hpp"
#include "store/store_limits.hpp"
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

// Refusals of one cap logged one line each, up to this many; then only counted (a flood of
// connections must not become a flood of log lines), and stop() logs how many there were.
constexpr uint64_t k_logged_refusals = 20;

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
  // Counts a refusal and logs it (the first k_logged_refusals of each cap; then a count at stop()).
  // Any thread.
  void refuse(const std::string& peer, StoreCap cap, const std::string& what);
  std::size_t cap_value(StoreCap cap) const;
  void check_reply_size(std::size_t bytes, const std::string& what) const;

  Options options;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};
  std::thread thread;
  std::mutex stop_mutex;  // makes stop() idempotent across threads
  uint16_t port = 0;
  StoreTable table{options.limits.max_stored_bytes};  // thread-safe
  std::array<std::atomic<uint64_t>, k_store_cap_count> refusals{};
  std::unordered_set<std::shared_ptr<Connection>> connections;
  std::atomic<std::size_t> connection_count{0};
  std::atomic<std::size_t> waiting_count{0};  // connections with wait_id != 0
  std::unordered_map<std::string, std::vector<Waiter>> waiters;  // key -> connections waiting for it
  uint64_t next_wait_id = 1;
};

namespace {

// One client connection. Owned by Impl::connections while open and by its pending handlers.
//
// Input: bytes are read into m_read_buffer and fed to the incremental parser; the next read starts
// only when every byte of the last one is fed. Output: replies queue in m_out_pending. When the
// queued replies reach max_reply_bytes, the connection stops executing requests and reading
// (backpressure) until they drain, so a client that sends requests without reading replies holds
// at most about twice max_reply_bytes of our memory.
// One deadline at a time (update_timer): admission (VALIDATE, and the token under require_auth),
// the current partial request, or queued replies the client does not read.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(StoreServer::Impl& server, tcp::socket socket)
      : m_server(server),
        m_socket(std::move(socket)),
        m_timer(m_socket.get_executor()),
        m_parser(server.options.limits.max_request_bytes) {
    boost::system::error_code ec;
    auto remote = m_socket.remote_endpoint(ec);
    peer = ec ? std::string("unknown peer") : format_endpoint(remote.address().to_string(), remote.port());
    m_socket.set_option(tcp::no_delay(true), ec);
  }

  void start() {
    update_timer();
    read_more();
  }

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
    m_timer.cancel();
    m_socket.shutdown(tcp::socket::shutdown_both, ec);
    m_socket.close(ec);
    m_server.forget(*this);
  }

  bool admitted() const { return validated && (authenticated || !m_server.options.require_auth); }

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
  enum class Deadline { none, admission, request, reader };

  std::size_t output_backlog() const { return m_out_pending.size() + m_out_inflight.size(); }
  bool backlogged() const { return output_backlog() >= m_server.options.limits.max_reply_bytes; }

  void read_more() {
    if (m_reading || closed || m_closing || m_paused) return;
    m_reading = true;
    m_socket.async_read_some(asio::buffer(m_read_buffer),
                             [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                               self->m_reading = false;
                               if (ec) {
                                 self->close();
                                 return;
                               }
                               self->m_in_begin = 0;
                               self->m_in_end = n;
                               self->process();
                               self->read_more();
                             });
  }

  // Feeds the unparsed input to the parser and executes each request it completes, in order,
  // until the input is used up, the connection closes, or the replies back up.
  void process() {
    if (closed) return;
    m_in_batch = true;
    try {
      while (!m_closing && !closed) {
        if (backlogged()) {
          m_paused = true;  // flush's completion resumes
          break;
        }
        if (m_in_begin == m_in_end) break;
        m_in_begin += m_parser.feed(std::string_view(m_read_buffer.data() + m_in_begin, m_in_end - m_in_begin));
        if (!m_parser.complete()) break;  // m_in_begin == m_in_end: wait for more bytes
        m_server.execute(*this, m_parser.request());
        m_parser.next();
      }
    } catch (const CapExceeded& refusal) {
      m_server.refuse(peer, refusal.cap(), refusal.what());
      m_closing = true;
    } catch (const ProtocolViolation& violation) {
      log::warn("store: closing the connection from ", peer, ": ", violation.what());
      m_closing = true;
    } catch (const std::exception& failure) {  // out of memory, no randomness: this peer loses, not all
      log::error("store: closing the connection from ", peer, " after an internal failure: ", failure.what());
      m_closing = true;
    }
    m_in_batch = false;
    if (m_closing)
      close_after_flush();
    else if (!m_out_pending.empty())
      flush();
    update_timer();
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
                        ++self->m_writes_done;
                        if (ec) {
                          self->close();
                          return;
                        }
                        if (!self->m_out_pending.empty())
                          self->flush();
                        else if (self->m_closing)
                          self->close();
                        if (self->m_paused && !self->backlogged()) {
                          self->m_paused = false;
                          self->process();
                          self->read_more();
                        }
                        self->update_timer();
                      });
  }

  // Arms the one deadline this connection needs now, or cancels it. A deadline that is still the
  // right one keeps running (a partial request's clock starts at its first byte, not its last).
  void update_timer() {
    if (closed) return;
    Deadline want = Deadline::none;
    uint64_t tag = 0;
    if (!admitted()) {
      want = Deadline::admission;
    } else if (m_paused) {
      want = Deadline::reader;
      tag = m_writes_done;  // each finished write is progress: the clock restarts
    } else if (m_parser.in_request()) {
      want = Deadline::request;
      tag = m_parser.requests_started();
    }
    if (want == m_deadline && tag == m_deadline_tag) return;
    m_deadline = want;
    m_deadline_tag = tag;
    const uint64_t generation = ++m_timer_generation;
    if (want == Deadline::none) {
      m_timer.cancel();
      return;
    }
    m_timer.expires_after(m_server.options.limits.request_timeout);
    m_timer.async_wait([self = shared_from_this(), generation](const boost::system::error_code& ec) {
      if (ec || self->closed || generation != self->m_timer_generation) return;
      self->deadline_passed();
    });
  }

  void deadline_passed() {
    const std::string limit = format_duration(m_server.options.limits.request_timeout);
    std::string what;
    switch (m_deadline) {
      case Deadline::admission:
        what = validated ? "it did not prove the job token within " + limit + " of connecting (this store requires it)"
                         : "it did not VALIDATE within " + limit + " of connecting";
        break;
      case Deadline::request:
        what = "it sent " + std::to_string(m_parser.request_bytes()) + " bytes of a " +
               query_type_name(static_cast<uint8_t>(m_parser.request().type)) + " request and did not finish it within " + limit;
        break;
      case Deadline::reader:
        what = "it did not read " + std::to_string(output_backlog()) + " bytes of replies within " + limit;
        break;
      case Deadline::none:
        return;
    }
    m_server.refuse(peer, StoreCap::request_timeout, what);
    close();  // at once: a stalled reader would never let a flush finish
  }

  StoreServer::Impl& m_server;
  tcp::socket m_socket;
  asio::steady_timer m_timer;
  std::array<char, 8192> m_read_buffer;
  std::size_t m_in_begin = 0, m_in_end = 0;  // the read's bytes not yet fed to m_parser
  RequestParser m_parser;
  std::string m_out_pending;   // replies not yet handed to the socket
  std::string m_out_inflight;  // the replies async_write is sending
  uint64_t m_writes_done = 0;
  bool m_reading = false;
  bool m_writing = false;
  bool m_in_batch = false;
  bool m_closing = false;
  bool m_paused = false;       // replies backed up: no executing, no reading until they drain
  Deadline m_deadline = Deadline::none;
  uint64_t m_deadline_tag = 0;
  uint64_t m_timer_generation = 0;
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

// ---- caps --------------------------------------------------------------------------------------

std::size_t StoreServer::Impl::cap_value(StoreCap cap) const {
  const StoreLimits& l = options.limits;
  switch (cap) {
    case StoreCap::reply_bytes: return l.max_reply_bytes;
    case StoreCap::stored_bytes: return l.max_stored_bytes;
    case StoreCap::connections: return l.max_connections;
    case StoreCap::request_bytes: return l.max_request_bytes;
    case StoreCap::request_timeout: return static_cast<std::size_t>(l.request_timeout.count());
  }
  return 0;
}

void StoreServer::Impl::refuse(const std::string& peer, StoreCap cap, const std::string& what) {
  const uint64_t n = refusals[static_cast<std::size_t>(cap)].fetch_add(1, std::memory_order_relaxed) + 1;
  if (n > k_logged_refusals) return;
  const std::string limit = cap == StoreCap::request_timeout ? format_duration(options.limits.request_timeout)
                                                             : std::to_string(cap_value(cap));
  log::warn("store: refused the client at ", peer, " (", to_string(cap), " ", limit, "): ", what,
            "; closed its connection, the job goes on",
            n == k_logged_refusals ? std::string("; further refusals at this cap are counted, not logged") : std::string());
}

void StoreServer::Impl::check_reply_size(std::size_t bytes, const std::string& what) const {
  if (bytes <= options.limits.max_reply_bytes) return;
  throw CapExceeded(StoreCap::reply_bytes, "the reply to its " + what + " would be " + std::to_string(bytes) +
                                               " bytes, over max_reply_bytes " +
                                               std::to_string(options.limits.max_reply_bytes));
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
      table.set(request.keys[0], std::move(request.values[0]), Quota::enforced);
      key_changed(request.keys[0]);
      return;
    case QueryType::compare_set:
      reply.bytes(table.compare_set(request.keys[0], request.values[0], std::move(request.values[1]), Quota::enforced));
      key_changed(request.keys[0]);
      break;
    case QueryType::get:
      check_reply_size(8 + table.value_size(request.keys[0]), "GET of key '" + request.keys[0].substr(0, 128) + "'");
      reply.bytes(table.get(request.keys[0]).value_or(std::string()));
      break;
    case QueryType::add:
      reply.i64(table.add(request.keys[0], request.delta, Quota::enforced));
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
      table.append(request.keys[0], request.values[0], Quota::enforced);
      key_changed(request.keys[0]);
      return;
    case QueryType::multi_get:
      // Sized before it is built: one request naming a large key 100,000 times must not make us
      // allocate the product.
      check_reply_size(table.multi_get_reply_bytes(request.keys),
                       "MULTI_GET of " + std::to_string(request.keys.size()) + " keys");
      for (const auto& key : request.keys) reply.bytes(table.get(key).value_or(std::string()));
      break;
    case QueryType::multi_set:
      table.set_many(request.keys, request.values, Quota::enforced);
      for (const auto& key : request.keys) key_changed(key);
      return;
    case QueryType::cancel_wait:
      end_wait(connection);
      reply.u8(static_cast<uint8_t>(WaitResponse::wait_canceled));
      break;
    case QueryType::queue_push:
      table.queue_push(request.keys[0], std::move(request.values[0]), Quota::enforced);
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
      check_reply_size(table.list_keys_reply_bytes(visibility), "LIST_KEYS");
      const auto keys = table.keys(visibility);
      reply.i64(static_cast<int64_t>(keys.size()));
      for (const auto& key : keys) reply.bytes(key);
      break;
    }
    default:
      DS_UNREACHABLE("command ", name(), " passed decode_request but has no handler");
  }
  // The commands sized above are refused before building; this catches the rest (a COMPARE_SET or
  // QUEUE_POP of a value grown by APPEND).
  check_reply_size(reply.data().size(), name());
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
    if (connections.size() >= options.limits.max_connections) {
      boost::system::error_code remote_ec;
      const auto remote = socket.remote_endpoint(remote_ec);
      const std::string peer =
          remote_ec ? std::string("unknown peer") : format_endpoint(remote.address().to_string(), remote.port());
      refuse(peer, StoreCap::connections, std::to_string(connections.size()) + " connections are open already");
      boost::system::error_code close_ec;
      socket.close(close_ec);
      start_accept();
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
  for (int i = 0; i < k_store_cap_count; ++i) {
    const uint64_t n = impl.refusals[static_cast<std::size_t>(i)].load();
    if (n > k_logged_refusals)
      log::warn("store: refused ", n, " clients in all at ", to_string(static_cast<StoreCap>(i)), " (", k_logged_refusals,
                " were logged)");
  }
}

uint16_t StoreServer::port() const { return m_impl->port; }
const std::string& StoreServer::host() const { return m_impl->options.bind_host; }

void StoreServer::set(const std::string& key, const std::string& value) {
  m_impl->table.set(key, value, Quota::exempt);  // the launcher's own keys are never refused
  // Waiters live on the io thread; after stop() this post never runs, which is fine: no waiters.
  asio::post(m_impl->io, [impl = m_impl.get(), key] { impl->key_changed(key); });
}

std::optional<std::string> StoreServer::try_get(const std::string& key) const { return m_impl->table.get(key); }
int64_t StoreServer::num_keys() const { return m_impl->table.size(ProtectedKeys::visible); }
std::vector<std::string> StoreServer::list_keys() const { return m_impl->table.keys(ProtectedKeys::visible); }
std::size_t StoreServer::num_connections() const { return m_impl->connection_count.load(std::memory_order_relaxed); }
std::size_t StoreServer::stored_bytes() const { return m_impl->table.stored_bytes(); }
uint64_t StoreServer::refusals(StoreCap cap) const {
  return m_impl->refusals[static_cast<std::size_t>(cap)].load(std::memory_order_relaxed);
}
std::size_t StoreServer::num_waiting() const { return m_impl->waiting_count.load(std::memory_order_relaxed); }

}  // namespace ds::store
