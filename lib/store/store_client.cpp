#include "store/store_client.hpp"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <thread>

#include "base/format.hpp"
#include "base/error.hpp"
#include "store/store_auth.hpp"
#include "store/store_barrier.hpp"

namespace ds::store {
namespace {

using Clock = std::chrono::steady_clock;

// now + duration, saturating (a timeout of milliseconds::max() means "forever", not overflow).
SteadyTime deadline_after(std::chrono::milliseconds duration) {
  const auto now = Clock::now();
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(SteadyTime::max() - now);
  return duration >= room ? SteadyTime::max() : now + duration;
}

// "'a', 'b'" (at most 10 shown).
std::string quoted_keys(const std::vector<std::string>& keys) {
  std::string out;
  const std::size_t shown = std::min<std::size_t>(keys.size(), 10);
  for (std::size_t i = 0; i < shown; ++i) out += (i ? ", '" : "'") + keys[i] + "'";
  if (keys.size() > shown) out += " and " + std::to_string(keys.size() - shown) + " more";
  return out;
}

std::string describe_op(const char* op, const std::vector<std::string>& keys) {
  return std::string(op) + "(" + quoted_keys(keys) + ")";
}

void expect_byte(uint8_t got, uint8_t want, const char* what) {
  if (got != want)
    throw TcpFailure(TcpFailure::Kind::error, "unexpected reply byte " + std::to_string(got) + " to " + what +
                                                  " (expected " + std::to_string(want) + "): not a store server?");
}

}  // namespace

StoreClient::StoreClient(Options options) : m_options(std::move(options)) { connect(); }

StoreClient::~StoreClient() = default;

std::string StoreClient::endpoint() const {
  if (m_options.host.find(':') != std::string::npos) return "[" + m_options.host + "]:" + std::to_string(m_options.port);
  return m_options.host + ":" + std::to_string(m_options.port);
}

void StoreClient::connect() {
  const auto start = Clock::now();
  const auto connect_deadline = deadline_after(m_options.connect_timeout);
  std::minstd_rand rng(static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(start.time_since_epoch().count()));
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  auto backoff = std::chrono::milliseconds(10);
  std::string last_error;
  for (;;) {
    try {
      m_connection = TcpConnection::connect(m_options.host, m_options.port, connect_deadline);
      break;
    } catch (const TcpFailure& failure) {
      last_error = failure.what();
    }
    const auto now = Clock::now();
    if (now >= connect_deadline)
      throw RendezvousError("cannot reach the rendezvous store at " + endpoint() + " within " +
                            format_duration(m_options.connect_timeout) + " (last error: " + last_error +
                            "). Check that the launcher (dslaunch) is running and its store listens there, that the "
                            "address and port (MASTER_ADDR/MASTER_PORT) are this job's, and that no firewall blocks the port");
    // Exponential backoff with jitter, so that thousands of ranks started together do not retry in step.
    auto pause = std::chrono::duration_cast<Clock::duration>(backoff * jitter(rng));
    std::this_thread::sleep_for(std::min(pause, connect_deadline - now));
    backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
  }
  try {
    handshake(deadline_after(m_options.timeout));
  } catch (const TcpFailure& failure) {
    m_connection.close();
    throw StoreError("the rendezvous store at " + endpoint() + " failed the connection handshake: " + failure.what() +
                     ". Is it a dslaunch or torch TCPStore server?");
  }
}

void StoreClient::handshake(SteadyTime deadline) {
  // Like torch's client: VALIDATE (no reply), then PING with our pid, which the server echoes.
  const auto nonce = static_cast<uint32_t>(::getpid());
  WireWriter hello;
  hello.query(QueryType::validate);
  hello.u32(k_validation_magic);
  hello.query(QueryType::ping);
  hello.u32(nonce);
  m_connection.send_all(hello.data(), deadline);
  const uint32_t echoed = m_connection.recv_u32(deadline);
  if (echoed != nonce)
    throw TcpFailure(TcpFailure::Kind::error, "PING returned " + std::to_string(echoed) + " instead of " + std::to_string(nonce));
  if (m_options.token.empty()) return;

  WireWriter challenge;
  challenge.query(QueryType::auth_challenge);
  m_connection.send_all(challenge.data(), deadline);
  std::string server_nonce;
  try {
    server_nonce = m_connection.recv_string(256, deadline);
  } catch (const TcpFailure& failure) {
    if (failure.kind() != TcpFailure::Kind::closed) throw;
    throw RendezvousError("the store at " + endpoint() +
                          " does not support job-token authentication (it closed the connection at AUTH_CHALLENGE): it is "
                          "a plain torch TCPStore, not this job's dslaunch store. Check the store address");
  }
  if (server_nonce.empty())
    throw RendezvousError("the store at " + endpoint() +
                          " has no job token but this client was given one: it is not this job's store, or it was "
                          "started without a token. Check the store address and the token the worker received");
  WireWriter response;
  response.query(QueryType::auth_response);
  response.bytes(auth_proof(m_options.token, server_nonce));
  m_connection.send_all(response.data(), deadline);
  uint8_t verdict = static_cast<uint8_t>(AuthResponse::rejected);
  try {
    verdict = m_connection.recv_u8(deadline);
  } catch (const TcpFailure& failure) {
    if (failure.kind() != TcpFailure::Kind::closed) throw;
  }
  if (verdict != static_cast<uint8_t>(AuthResponse::accepted)) {
    m_connection.close();
    throw RendezvousError("the store at " + endpoint() +
                          " rejected this client's job token: it is not the token of the job that runs this store. "
                          "Check that the worker received this job's token (not another job's)");
  }
  m_authenticated = true;
}

template <typename Fn>
auto StoreClient::run(const char* op, const std::vector<std::string>& keys, Fn&& fn) {
  std::lock_guard lock(m_mutex);
  if (!m_broken.empty())
    throw StoreError("cannot " + describe_op(op, keys) + " on the store at " + endpoint() +
                     ": this client's connection failed earlier (" + m_broken + "); create a new StoreClient to reconnect");
  try {
    return fn(deadline_after(m_options.timeout));
  } catch (const TcpFailure& failure) {
    m_connection.close();
    m_broken = failure.what();
    std::string message;
    switch (failure.kind()) {
      case TcpFailure::Kind::timed_out:
        message = "no reply from the store at " + endpoint() + " to " + describe_op(op, keys) + " within " +
                  format_duration(m_options.timeout) + ": the store server is hung or the network path to it is broken";
        break;
      case TcpFailure::Kind::closed: {
        message = "lost the connection to the store at " + endpoint() + " during " + describe_op(op, keys) + ": " +
                  failure.what() + ". The store server exited (did the launcher stop?) or closed this connection (it does so for a "
                  "request past one of its caps, which the launcher's log names)";
        const bool protected_key = std::any_of(keys.begin(), keys.end(), [](const auto& k) { return is_protected_key(k); });
        if (protected_key && !m_authenticated)
          message += "; a store with a job token closes connections that use protected keys (" + protected_prefixes_text() +
                     ") without proving the token: pass the job token";
        else if (!m_authenticated)
          message += "; if the store requires the job token (require_auth), pass it";
        break;
      }
      default:
        message = "lost the connection to the store at " + endpoint() + " during " + describe_op(op, keys) + ": " +
                  failure.what();
    }
    throw StoreError(message);
  }
}

bool StoreClient::wait_locked(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  const auto reply_deadline = [&] { return deadline_after(m_options.timeout); };
  WireWriter request;
  request.query(QueryType::wait);
  request.u64(keys.size());
  for (const auto& key : keys) request.bytes(key);
  m_connection.send_all(request.data(), reply_deadline());
  try {
    expect_byte(m_connection.recv_u8(deadline_after(timeout)), static_cast<uint8_t>(WaitResponse::stop_waiting), "WAIT");
    return true;
  } catch (const TcpFailure& failure) {
    if (failure.kind() != TcpFailure::Kind::timed_out) throw;
  }
  // Timed out: withdraw the wait so the connection can be used again. STOP_WAITING may have
  // crossed CANCEL_WAIT on the wire; then WAIT_CANCELED follows it.
  WireWriter cancel;
  cancel.query(QueryType::cancel_wait);
  m_connection.send_all(cancel.data(), reply_deadline());
  const uint8_t reply = m_connection.recv_u8(reply_deadline());
  if (reply == static_cast<uint8_t>(WaitResponse::wait_canceled)) return false;
  expect_byte(reply, static_cast<uint8_t>(WaitResponse::stop_waiting), "CANCEL_WAIT");
  expect_byte(m_connection.recv_u8(reply_deadline()), static_cast<uint8_t>(WaitResponse::wait_canceled), "CANCEL_WAIT");
  return true;  // all keys arrived just as the time ran out
}

// ---- KeyValueStore -----------------------------------------------------------------------------

void StoreClient::set(const std::string& key, const std::string& value) {
  run("set", {key}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::set);
    request.bytes(key);
    request.bytes(value);
    m_connection.send_all(request.data(), deadline);
  });
}

std::string StoreClient::get(const std::string& key) {
  const auto timeout = m_options.timeout;
  return run("get", {key}, [&](SteadyTime deadline) {
    if (!wait_locked({key}, timeout))
      throw RendezvousTimeout("timed out after " + format_duration(timeout) + " waiting for store key '" + key + "' at " +
                              endpoint() + " (get): no rank has set it. Check that the rank that publishes it is alive "
                              "and spells the key the same way");
    WireWriter request;
    request.query(QueryType::get);
    request.bytes(key);
    m_connection.send_all(request.data(), deadline);
    return m_connection.recv_string(k_max_value_bytes, deadline);
  });
}

std::optional<std::string> StoreClient::try_get(const std::string& key) {
  return run("try_get", {key}, [&](SteadyTime deadline) -> std::optional<std::string> {
    WireWriter request;
    request.query(QueryType::check);
    request.u64(1);
    request.bytes(key);
    request.query(QueryType::get);  // pipelined: GET of a missing key harmlessly replies ""
    request.bytes(key);
    m_connection.send_all(request.data(), deadline);
    const uint8_t present = m_connection.recv_u8(deadline);
    std::string value = m_connection.recv_string(k_max_value_bytes, deadline);
    if (present != static_cast<uint8_t>(CheckResponse::ready)) return std::nullopt;
    return value;
  });
}

int64_t StoreClient::add(const std::string& key, int64_t delta) {
  return run("add", {key}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::add);
    request.bytes(key);
    request.i64(delta);
    m_connection.send_all(request.data(), deadline);
    return m_connection.recv_i64(deadline);
  });
}

bool StoreClient::check(const std::vector<std::string>& keys) {
  return run("check", keys, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::check);
    request.u64(keys.size());
    for (const auto& key : keys) request.bytes(key);
    m_connection.send_all(request.data(), deadline);
    return m_connection.recv_u8(deadline) == static_cast<uint8_t>(CheckResponse::ready);
  });
}

void StoreClient::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  run("wait", keys, [&](SteadyTime) {
    if (wait_locked(keys, timeout)) return;
    // Name the keys still missing: one CHECK per key (only on this failure path). The wait used up
    // the deadline run() computed, so these replies get a fresh one.
    const SteadyTime deadline = deadline_after(m_options.timeout);
    std::vector<std::string> missing;
    for (const auto& key : keys) {
      WireWriter request;
      request.query(QueryType::check);
      request.u64(1);
      request.bytes(key);
      m_connection.send_all(request.data(), deadline);
      if (m_connection.recv_u8(deadline) != static_cast<uint8_t>(CheckResponse::ready)) missing.push_back(key);
    }
    throw RendezvousTimeout("timed out after " + format_duration(timeout) + " waiting for store key" +
                            (keys.size() == 1 ? "" : "s") + " at " + endpoint() + "; missing: " +
                            (missing.empty() ? std::string("none (they arrived just now)") : quoted_keys(missing)) +
                            (keys.size() > 1 ? " (of " + std::to_string(keys.size()) + " waited for)" : std::string()));
  });
}

bool StoreClient::delete_key(const std::string& key) {
  return run("delete_key", {key}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::delete_key);
    request.bytes(key);
    m_connection.send_all(request.data(), deadline);
    return m_connection.recv_i64(deadline) > 0;
  });
}

// ---- the rest of torch's Store API -------------------------------------------------------------

std::string StoreClient::compare_set(const std::string& key, const std::string& expected, const std::string& desired) {
  return run("compare_set", {key}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::compare_set);
    request.bytes(key);
    request.bytes(expected);
    request.bytes(desired);
    m_connection.send_all(request.data(), deadline);
    return m_connection.recv_string(k_max_value_bytes, deadline);
  });
}

void StoreClient::append(const std::string& key, const std::string& bytes) {
  run("append", {key}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::append);
    request.bytes(key);
    request.bytes(bytes);
    m_connection.send_all(request.data(), deadline);
  });
}

std::vector<std::string> StoreClient::multi_get(const std::vector<std::string>& keys) {
  const auto timeout = m_options.timeout;
  return run("multi_get", keys, [&](SteadyTime deadline) {
    if (!wait_locked(keys, timeout))
      throw RendezvousTimeout("timed out after " + format_duration(timeout) + " waiting for store keys " +
                              quoted_keys(keys) + " at " + endpoint() + " (multi_get)");
    WireWriter request;
    request.query(QueryType::multi_get);
    request.u64(keys.size());
    for (const auto& key : keys) request.bytes(key);
    m_connection.send_all(request.data(), deadline);
    std::vector<std::string> values;
    values.reserve(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) values.push_back(m_connection.recv_string(k_max_value_bytes, deadline));
    return values;
  });
}

void StoreClient::multi_set(const std::vector<std::string>& keys, const std::vector<std::string>& values) {
  if (keys.size() != values.size())
    throw UsageError("store multi_set: " + std::to_string(keys.size()) + " keys but " + std::to_string(values.size()) +
                     " values; pass one value per key");
  run("multi_set", keys, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::multi_set);
    request.u64(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      request.bytes(keys[i]);
      request.bytes(values[i]);
    }
    m_connection.send_all(request.data(), deadline);
  });
}

int64_t StoreClient::num_keys() {
  return run("num_keys", {}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::get_num_keys);
    m_connection.send_all(request.data(), deadline);
    return m_connection.recv_i64(deadline);
  });
}

std::vector<std::string> StoreClient::list_keys() {
  return run("list_keys", {}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::list_keys);
    m_connection.send_all(request.data(), deadline);
    const int64_t count = m_connection.recv_i64(deadline);
    if (count < 0) throw TcpFailure(TcpFailure::Kind::error, "LIST_KEYS replied a negative count");
    std::vector<std::string> keys;
    for (int64_t i = 0; i < count; ++i) keys.push_back(m_connection.recv_string(k_max_key_bytes, deadline));
    return keys;
  });
}

void StoreClient::queue_push(const std::string& queue, const std::string& value) {
  run("queue_push", {queue}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::queue_push);
    request.bytes(queue);
    request.bytes(value);
    m_connection.send_all(request.data(), deadline);
  });
}

std::optional<std::string> StoreClient::queue_pop(const std::string& queue, QueueWait wait) {
  const auto timeout = m_options.timeout;
  return run("queue_pop", {queue}, [&](SteadyTime deadline) -> std::optional<std::string> {
    const auto wait_deadline = deadline_after(timeout);
    for (;;) {
      if (wait == QueueWait::yes) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(wait_deadline - Clock::now());
        if (left.count() <= 0 || !wait_locked({queue}, left))
          throw RendezvousTimeout("timed out after " + format_duration(timeout) + " waiting for an element of store queue '" +
                                  queue + "' at " + endpoint());
      }
      WireWriter request;
      request.query(QueryType::queue_pop);
      request.bytes(queue);
      m_connection.send_all(request.data(), deadline);
      if (m_connection.recv_i64(deadline) > 0) return m_connection.recv_string(k_max_value_bytes, deadline);
      if (wait == QueueWait::no) return std::nullopt;
      // Another consumer took the element between our WAIT and POP: wait again.
    }
  });
}

int64_t StoreClient::queue_len(const std::string& queue) {
  return run("queue_len", {queue}, [&](SteadyTime deadline) {
    WireWriter request;
    request.query(QueryType::queue_len);
    request.bytes(queue);
    m_connection.send_all(request.data(), deadline);
    return m_connection.recv_i64(deadline);
  });
}

void StoreClient::barrier(const std::string& name, int world_size, int rank, std::chrono::milliseconds timeout) {
  store_barrier(*this, name, world_size, rank, timeout);
}

}  // namespace ds::store
