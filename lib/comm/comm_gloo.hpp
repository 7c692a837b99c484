// GlooComm: the CPU communicator. Collectives on host memory between processes (or threads), as
// rings over Gloo's TCP transport (Debian's libgloo: its pairs and unbound buffers only; the
// collectives are ours, so every dtype works and the summation order is fixed).
//
// Rendezvous. Every rank calls make_gloo_comm with the same store, prefix and size; each publishes
// its listening addresses under "<prefix>/gloo/" and connects to every other rank (a full mesh; the
// rings use the neighbours). The call blocks until all ranks are connected, or throws
// RendezvousTimeout after the timeout naming the ranks that did not show up.
//
// Algorithms (n = size, r = rank, chunks per Note [ring chunks] in comm.hpp, all indices mod n).
//  - reduce-scatter ring: at step s = 0..n-2 rank r sends chunk r-1-s to rank r+1 and receives chunk
//    r-2-s from rank r-1, combining it with its own copy. So chunk c starts at rank c+1 and ends at
//    rank c, and every element of chunk c is reduced as
//        (((x[c+1] + x[c+2]) + x[c+3]) + ... ) + x[c]      (x[k] = rank k's value)
//    rounded to the dtype after every "+": an order fixed by (c, n), bitwise the same run to run.
//  - all_gather ring: at step s rank r forwards chunk r-s to rank r+1.
//  - all_reduce = reduce-scatter ring then all_gather ring, in place, on the same chunks (so it equals
//    reduce_scatter + all_gather bit for bit).
//  - broadcast: a chain root -> root+1 -> ... -> root-1.
//  - barrier: an all_gather of one word per rank.
// Each chunk moves in segments (GlooCommOptions::segment_bytes) over pipeline_depth independent
// lanes, so large buffers stream through the ring and the extra memory is a few segments per op,
// never a copy of the buffer.
//
// Threads. Ops run on one communication thread per communicator, in call order (Note [comm
// ordering]), overlapping the caller's compute. Before each op's data moves, every rank checks that
// its left neighbour issued the same op (kind, count, dtype, reduce op, root, sequence number).
// Both threads that write to the sockets (ours and Gloo's event loop) run with SIGPIPE blocked, so a
// write to a vanished peer is an error to report, not a silent death (Note [SIGPIPE] in the .cpp);
// the caller's own signal mask is left as it was.
//
// Failures. Every transfer is bounded by the timeout. A peer that exits, crashes, closes its
// communicator or times out fails the running op with CommError naming the op, the peer and the
// likely cause ("rank 3 closed the connection (it probably exited; see its log)"). The first rank to
// see a failure publishes its diagnosis under "<prefix>/failure" and then closes its connections,
// so the others fail fast too, and report that first diagnosis rather than their neighbour's
// reaction to it. After a failure the communicator refuses new ops with the same message (CommError).
//
// Destruction. Destroying a GlooComm with ops still queued or running aborts them (their wait()
// throws CommError) and tells the peers, through "<prefix>/closed/<rank>", that this rank closed its
// communicator; wait for your ops first. The store must outlive the communicator.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "comm/comm.hpp"
#include "store/kv_store.hpp"

namespace ds::comm {

struct GlooCommOptions {
  int rank = 0;
  int size = 1;
  // Store keys of this communicator live under "<prefix>/". Unique per communicator and per job
  // attempt (include the restart count), so restarts and sibling communicators never collide.
  std::string prefix = "comm";
  // Host name or address to listen on; peers connect to it, so on several nodes it must be this
  // node's address as the others see it.
  std::string bind_host = "127.0.0.1";
  // When set, listen on this network interface's address (e.g. "eth0") instead of bind_host.
  std::string bind_iface;
  // Bound on every rendezvous wait and every transfer. Unset: comm_timeout_from_env().
  std::optional<std::chrono::milliseconds> timeout;
  // Pipelining: each chunk moves in segments of this many bytes, over this many lanes in flight.
  int64_t segment_bytes = 1 << 20;
  int pipeline_depth = 4;
};

// DSLAUNCH_COMM_TIMEOUT (seconds, may be fractional) if set, else 30 minutes. Throws UsageError
// naming the variable when its value is not a positive number.
std::chrono::milliseconds comm_timeout_from_env();

// Connects this rank to the others (blocks until all did) and starts its communication thread.
// Throws UsageError for bad options, RendezvousTimeout when ranks do not show up in time, CommError
// when the transport cannot bind or connect.
std::unique_ptr<Comm> make_gloo_comm(store::KeyValueStore& store, const GlooCommOptions& options);

}  // namespace ds::comm
