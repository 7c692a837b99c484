#include "comm/comm_gloo.hpp"

#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <pthread.h>
#include <signal.h>

#include <gloo/rendezvous/context.h>
#include <gloo/transport/tcp/device.h>

#include "base/check.hpp"
#include "base/format.hpp"
#include "comm/comm_gloo_ring.hpp"
#include "comm/comm_gloo_store.hpp"
#include "comm/comm_work.hpp"
#include "base/error.hpp"

namespace ds::comm {
namespace {

using gloo_ring::PeerFailure;
using gloo_ring::RingLink;

constexpr uint64_t k_header_magic = 0x3130'6d6d'6f63'7364ull;  // "dscomm01"
constexpr std::chrono::milliseconds k_default_timeout = std::chrono::minutes(30);
// How long a rank that lost the race to report a failure waits for the winner's report.
constexpr std::chrono::milliseconds k_report_grace = std::chrono::seconds(10);

enum class OpKind : uint32_t { all_reduce = 1, reduce_scatter, all_gather, broadcast, barrier };

// What every rank sends its right neighbour before an op's data moves (Note [comm ordering]).
struct OpHeader {
  uint64_t magic = k_header_magic;
  uint64_t seq = 0;
  uint32_t kind = 0;
  uint32_t dtype = 0;
  uint32_t op = 0;
  int32_t root = 0;
  int64_t count = 0;
  bool operator==(const OpHeader&) const = default;
};

// The left neighbour issued a different op (thrown by check_neighbour).
struct OpMismatch {
  OpHeader theirs;
};

std::string describe_op(const OpHeader& h) {
  if (h.magic != k_header_magic) return "an unknown message (not a dslaunch collective)";
  const auto dtype = h.dtype <= 2 ? dtype_name(static_cast<DType>(h.dtype)) : "?";
  const auto op = h.op <= 2 ? reduce_op_name(static_cast<ReduceOp>(h.op)) : "?";
  const std::string seq = " #" + std::to_string(h.seq);
  const std::string count = std::to_string(h.count) + " x " + dtype;
  switch (static_cast<OpKind>(h.kind)) {
    case OpKind::all_reduce: return "all_reduce" + seq + " (" + count + ", " + op + ")";
    case OpKind::reduce_scatter: return "reduce_scatter" + seq + " (recv_count " + count + ", " + op + ")";
    case OpKind::all_gather: return "all_gather" + seq + " (send_count " + count + ")";
    case OpKind::broadcast: return "broadcast" + seq + " (" + count + " from rank " + std::to_string(h.root) + ")";
    case OpKind::barrier: return "barrier" + seq;
  }
  return "op kind " + std::to_string(h.kind) + seq;
}

// Note [SIGPIPE]. Gloo writes to its sockets with writev(), which raises SIGPIPE when the peer has
// gone, and SIGPIPE's default action kills the process: a rank would die silently instead of
// reporting which peer left. Every thread that writes to this communicator's sockets (Gloo's event
// loop thread and our communication thread) is therefore started with SIGPIPE blocked: the write
// then fails with EPIPE, Gloo reports it, and the op fails with a CommError. Blocking is per thread
// (new threads inherit their creator's mask), so the process's own SIGPIPE handling is untouched.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &block, &m_old);
  }
  ~SigpipeBlocked() { pthread_sigmask(SIG_SETMASK, &m_old, nullptr); }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t m_old;
};

// A failure as this rank saw it: what happened, the likely cause, and Gloo's own words.
struct Diagnosis {
  std::string summary;  // "rank 3 closed the connection"
  std::string hint;     // "it probably exited; see its log"
  std::string detail;   // Gloo's message, if any
  std::string text() const {
    std::string out = summary;
    if (!hint.empty()) out += " (" + hint + ")";
    if (!detail.empty()) out += " [gloo: " + detail + "]";
    return out;
  }
};

class GlooComm final : public Comm {
 public:
  GlooComm(store::KeyValueStore& store, const GlooCommOptions& options, std::chrono::milliseconds timeout)
      : m_store(store), m_options(options), m_timeout(timeout) {
    const SigpipeBlocked sigpipe_blocked;  // inherited by Gloo's loop thread and ours (Note [SIGPIPE])
    if (m_options.size > 1) connect();
    m_thread = std::thread([this] { thread_main(); });
  }

  ~GlooComm() override {
    bool failed = false;
    {
      std::lock_guard lock(m_mutex);
      m_closing = true;
      failed = !m_failure.empty();
    }
    // Tell the peers why our connections go away before they see them go (GlooComm's failure
    // reports read this), then interrupt the op in progress, if any.
    if (!failed && m_options.size > 1) {
      try {
        m_store.set(key("closed/" + std::to_string(m_options.rank)), "1");
      } catch (const std::exception&) {
        // The store may be gone at shutdown; the peers then report "closed the connection".
      }
    }
    m_interrupter.abort();
    m_queue_cv.notify_all();
    m_thread.join();
    for (auto& task : m_queue)
      task.work->finish(std::make_exception_ptr(
          CommError(describe() + ": " + describe_op(task.header) + " not run: the communicator was destroyed first")));
    // Buffers, then pairs, then the device that serves them (Gloo's own destruction order).
    m_retired.clear();
    m_context.reset();
    m_device.reset();
  }

  int rank() const override { return m_options.rank; }
  int size() const override { return m_options.size; }
  std::string describe() const override {
    return "gloo comm '" + m_options.prefix + "' rank " + std::to_string(m_options.rank) + " of " +
           std::to_string(m_options.size);
  }

 protected:
  std::shared_ptr<Work> start_all_reduce(void* buf, int64_t count, DType dtype, ReduceOp op) override {
    return enqueue(header(OpKind::all_reduce, count, dtype, op), [=, this](RingLink& link) {
      gloo_ring::all_reduce(link, ring_config(), buf, count, dtype, op);
    });
  }
  std::shared_ptr<Work> start_reduce_scatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                             ReduceOp op) override {
    return enqueue(header(OpKind::reduce_scatter, recv_count, dtype, op), [=, this](RingLink& link) {
      gloo_ring::reduce_scatter(link, ring_config(), send, recv, recv_count, dtype, op);
    });
  }
  std::shared_ptr<Work> start_all_gather(const void* send, void* recv, int64_t send_count, DType dtype) override {
    return enqueue(header(OpKind::all_gather, send_count, dtype, ReduceOp::sum), [=, this](RingLink& link) {
      gloo_ring::all_gather(link, ring_config(), send, recv, send_count, dtype);
    });
  }
  std::shared_ptr<Work> start_broadcast(void* buf, int64_t count, DType dtype, int root) override {
    OpHeader h = header(OpKind::broadcast, count, dtype, ReduceOp::sum);
    h.root = root;
    return enqueue(h, [=, this](RingLink& link) { gloo_ring::broadcast(link, ring_config(), buf, count, dtype, root); });
  }
  std::shared_ptr<Work> start_barrier() override {
    // An all_gather of one word per rank: no rank gets past it before every rank has sent its word.
    return enqueue(header(OpKind::barrier, 0, DType::f32, ReduceOp::sum), [this](RingLink& link) {
      std::vector<float> words(static_cast<size_t>(m_options.size));
      gloo_ring::all_gather(link, ring_config(), &words[static_cast<size_t>(m_options.rank)], words.data(), 1,
                            DType::f32);
    });
  }

 private:
  struct Task {
    OpHeader header;
    std::function<void(RingLink&)> run;
    std::shared_ptr<CommWork> work;
  };

  std::string key(const std::string& name) const { return m_options.prefix + "/" + name; }

  gloo_ring::RingConfig ring_config() {
    return {.segment_bytes = m_options.segment_bytes, .lanes = m_options.pipeline_depth, .staging = &m_staging};
  }

  static OpHeader header(OpKind kind, int64_t count, DType dtype, ReduceOp op) {
    OpHeader h;
    h.kind = static_cast<uint32_t>(kind);
    h.count = count;
    h.dtype = static_cast<uint32_t>(dtype);
    h.op = static_cast<uint32_t>(op);
    return h;
  }

  void connect();
  std::shared_ptr<Work> enqueue(OpHeader header, std::function<void(RingLink&)> run);
  void thread_main();
  void run_task(Task& task);
  void check_neighbour(RingLink& link, const OpHeader& mine);
  Diagnosis diagnose(const PeerFailure& failure);
  std::string settle(const Diagnosis& local);
  void record_failure(const std::string& message);

  store::KeyValueStore& m_store;
  const GlooCommOptions m_options;
  const std::chrono::milliseconds m_timeout;
  std::shared_ptr<gloo::transport::Device> m_device;
  std::shared_ptr<gloo::rendezvous::Context> m_context;
  gloo_ring::Interrupter m_interrupter;
  gloo_ring::RetiredBuffers m_retired;  // the communication thread's only; hold m_context's transport alive
  std::vector<std::byte> m_staging;     // the communication thread's only

  std::mutex m_mutex;  // guards the fields below
  std::condition_variable m_queue_cv;
  std::deque<Task> m_queue;
  bool m_closing = false;
  uint64_t m_next_seq = 0;
  std::string m_failure;  // the first failure's message; empty while healthy

  std::thread m_thread;
};

void GlooComm::connect() {
  gloo::transport::tcp::attr attr;
  const std::string where = m_options.bind_iface.empty() ? "host '" + m_options.bind_host + "'"
                                                         : "interface '" + m_options.bind_iface + "'";
  if (m_options.bind_iface.empty())
    attr.hostname = m_options.bind_host;
  else
    attr.iface = m_options.bind_iface;
  try {
    m_device = gloo::transport::tcp::CreateDevice(attr);
  } catch (const std::exception& e) {
    throw CommError(describe() + ": cannot listen on " + where + ": " + e.what() +
                    "; set the communicator's bind_host (or bind_iface) to an address of this node");
  }
  m_context = std::make_shared<gloo::rendezvous::Context>(m_options.rank, m_options.size);
  m_context->setTimeout(m_timeout);
  GlooStoreAdapter adapter(m_store, key("gloo/"), m_timeout);
  try {
    m_context->connectFullMesh(adapter, m_device);
  } catch (const RendezvousTimeout& e) {
    // Name the ranks that never published their addresses: they are the ones to look at.
    std::string missing;
    for (int r = 0; r < m_options.size; ++r) {
      try {
        if (!m_store.check({key("gloo/" + std::to_string(r))})) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      } catch (const std::exception&) {
      }
    }
    throw RendezvousTimeout(describe() + ": timed out after " + format_duration(m_timeout) +
                            " waiting for the other ranks to join" +
                            (missing.empty() ? "" : " (missing: rank " + missing + ")") +
                            ": did every rank start and create this communicator with the same prefix and size? (" +
                            e.what() + ")");
  } catch (const ds::Error&) {
    throw;  // the store's own errors say what went wrong
  } catch (const std::exception& e) {
    throw CommError(describe() + ": connecting to the other ranks from " + where + " failed: " + e.what());
  }
}

std::shared_ptr<Work> GlooComm::enqueue(OpHeader header, std::function<void(RingLink&)> run) {
  auto work = std::make_shared<CommWork>();
  {
    std::lock_guard lock(m_mutex);
    header.seq = m_next_seq++;
    if (!m_failure.empty())
      throw CommError(describe_op(header) + " refused: this communicator failed earlier: " + m_failure);
    m_queue.push_back({header, std::move(run), work});
  }
  m_queue_cv.notify_one();
  return work;
}

void GlooComm::thread_main() {
  for (;;) {
    Task task;
    std::string failure;
    {
      std::unique_lock lock(m_mutex);
      m_queue_cv.wait(lock, [&] { return m_closing || !m_queue.empty(); });
      if (m_closing) return;  // the destructor fails what is left
      task = std::move(m_queue.front());
      m_queue.pop_front();
      failure = m_failure;
    }
    if (!failure.empty()) {
      task.work->finish(std::make_exception_ptr(
          CommError(describe_op(task.header) + " not run: this communicator failed earlier: " + failure)));
      continue;
    }
    run_task(task);
  }
}

void GlooComm::run_task(Task& task) {
  const std::string what = describe() + ": " + describe_op(task.header);
  std::string message;
  try {
    RingLink link(m_context.get(), m_options.rank, m_options.size, m_interrupter, m_retired, task.header.seq,
                  m_timeout);
    if (m_options.size > 1) check_neighbour(link, task.header);
    task.run(link);
    task.work->finish(nullptr);
    return;
  } catch (const PeerFailure& f) {
    message = what + " failed: " + settle(diagnose(f));
  } catch (const OpMismatch& m) {
    const int left = (m_options.rank + m_options.size - 1) % m_options.size;
    Diagnosis d;
    d.summary = "mismatched collectives: rank " + std::to_string(left) + " issued " + describe_op(m.theirs) +
                " where rank " + std::to_string(m_options.rank) + " issued " + describe_op(task.header);
    d.hint = "every rank must issue the same collectives, with the same count, dtype, reduce op and root, in the "
             "same order";
    message = what + " failed: " + settle(d);
  } catch (const gloo_ring::Aborted&) {
    message = what + " aborted: the communicator was destroyed while the op ran";
  } catch (const std::exception& e) {
    Diagnosis d;
    d.summary = e.what();
    message = what + " failed: " + settle(d);
  }
  record_failure(message);
  task.work->finish(std::make_exception_ptr(CommError(message)));
}

void GlooComm::check_neighbour(RingLink& link, const OpHeader& mine) {
  OpHeader theirs{};
  auto recv = link.recv(link.left(), gloo_ring::k_header_channel, &theirs, sizeof theirs);
  auto send = link.send(link.right(), gloo_ring::k_header_channel, &mine, sizeof mine);
  link.wait(recv);
  link.wait(send);
  if (!(theirs == mine)) throw OpMismatch{theirs};
}

Diagnosis GlooComm::diagnose(const PeerFailure& f) {
  const std::string peer = "rank " + std::to_string(f.peer);
  Diagnosis d;
  d.detail = f.detail;
  bool closed_its_comm = false;
  if (f.kind == PeerFailure::Kind::closed || f.kind == PeerFailure::Kind::reset) {
    try {
      closed_its_comm = m_store.try_get(key("closed/" + std::to_string(f.peer))).has_value();
    } catch (const std::exception&) {
    }
  }
  if (closed_its_comm) {
    d.summary = peer + " closed its communicator while this op still needed it";
    d.hint = "it stopped early or skipped this collective: every rank must issue the same collectives in the same "
             "order; see its log";
    return d;
  }
  switch (f.kind) {
    case PeerFailure::Kind::closed:
      d.summary = peer + " closed the connection";
      d.hint = "it probably exited; see its log";
      break;
    case PeerFailure::Kind::reset:
      d.summary = peer + " reset the connection";
      d.hint = "it probably exited or crashed; see its log";
      break;
    case PeerFailure::Kind::timeout:
      d.summary = "timed out after " + format_duration(m_timeout) +
                  (f.receiving ? " waiting for data from " : " waiting for ") + peer +
                  (f.receiving ? "" : " to take data");
      d.hint = peer + " may be hung, stuck in a different collective, or much slower than this rank; if it is only "
                      "slow, raise DSLAUNCH_COMM_TIMEOUT (seconds)";
      break;
    case PeerFailure::Kind::other:
      d.summary = "the connection to " + peer + " failed";
      break;
  }
  return d;
}

std::string GlooComm::settle(const Diagnosis& local) {
  // The first rank to fail writes its diagnosis; the others, who usually fail because that rank
  // closed its connections, report it instead of their neighbour's reaction (see comm_gloo.hpp).
  try {
    if (m_store.add(key("failures"), 1) == 1) {
      m_store.set(key("failure"), std::to_string(m_options.rank) + "\n" + local.text());
      return local.text();
    }
    m_store.wait({key("failure")}, std::min(m_timeout, k_report_grace));
    const std::string report = m_store.get(key("failure"));
    const auto newline = report.find('\n');
    if (newline == std::string::npos) return local.text();
    return report.substr(newline + 1) + " (reported first by rank " + report.substr(0, newline) + "; rank " +
           std::to_string(m_options.rank) + " then saw: " + local.summary + ")";
  } catch (const std::exception&) {
    return local.text();  // no store, no report: this rank's own view is all there is
  }
}

void GlooComm::record_failure(const std::string& message) {
  {
    std::lock_guard lock(m_mutex);
    if (m_failure.empty()) m_failure = message;
  }
  // Close every connection now, so that (1) peers waiting on this rank fail at once instead of at
  // their timeout, and (2) no transfer posted by the failed op can still write into the caller's
  // buffers once its Work reports the failure.
  if (m_context) m_context->closeConnections();
}

}  // namespace

std::chrono::milliseconds comm_timeout_from_env() {
  const char* text = std::getenv("DSLAUNCH_COMM_TIMEOUT");
  if (text == nullptr || *text == '\0') return k_default_timeout;
  char* end = nullptr;
  const double seconds = std::strtod(text, &end);
  if (end == text || *end != '\0' || !std::isfinite(seconds) || seconds <= 0)
    throw UsageError(std::string("DSLAUNCH_COMM_TIMEOUT='") + text +
                     "' is not a positive number of seconds (e.g. DSLAUNCH_COMM_TIMEOUT=600)");
  return std::chrono::milliseconds(std::max<int64_t>(1, std::llround(seconds * 1000)));
}

std::unique_ptr<Comm> make_gloo_comm(store::KeyValueStore& store, const GlooCommOptions& options) {
  if (options.size < 1)
    throw UsageError("gloo comm '" + options.prefix + "': size " + std::to_string(options.size) + " must be >= 1");
  if (options.rank < 0 || options.rank >= options.size)
    throw UsageError("gloo comm '" + options.prefix + "': rank " + std::to_string(options.rank) +
                     " is outside 0.." + std::to_string(options.size - 1));
  if (options.prefix.empty())
    throw UsageError("gloo comm: the store key prefix is empty; give each communicator its own prefix");
  if (options.segment_bytes < 1)
    throw UsageError("gloo comm '" + options.prefix + "': segment_bytes " + std::to_string(options.segment_bytes) +
                     " must be >= 1");
  if (options.pipeline_depth < 1 || options.pipeline_depth > gloo_ring::k_max_lanes)
    throw UsageError("gloo comm '" + options.prefix + "': pipeline_depth " + std::to_string(options.pipeline_depth) +
                     " must be in 1.." + std::to_string(gloo_ring::k_max_lanes));
  if (options.timeout && options.timeout->count() <= 0)
    throw UsageError("gloo comm '" + options.prefix + "': timeout " + std::to_string(options.timeout->count()) +
                     " ms must be positive");
  const auto timeout = options.timeout ? *options.timeout : comm_timeout_from_env();
  return std::make_unique<GlooComm>(store, options, timeout);
}

}  // namespace ds::comm
