// A barrier over any KeyValueStore (the TCP client or MemoryStore), O(1) store operations per rank:
//   rank r sets "<name>/rank/<r>", then add("<name>/count", 1); the rank that brings the count to
//   world_size sets "<name>/done"; every rank waits for "<name>/done".
// The per-rank keys exist so that a timeout can say which ranks never arrived. A barrier name is
// single-use (its count keeps counting): use a fresh name per barrier, e.g. with an epoch number.
#pragma once

#include <chrono>
#include <string>

#include "store/kv_store.hpp"

namespace ds::store {

// Blocks until all world_size ranks have called it with this name, or timeout passes.
// Throws UsageError for a rank outside [0, world_size); RendezvousTimeout on timeout, e.g.
//   "rendezvous barrier 'x' timed out after 30 s: 3 of 4 ranks joined; missing ranks: 2";
// RendezvousError when more than world_size ranks join (a rank joined twice or the name was reused).
void store_barrier(KeyValueStore& store, const std::string& name, int world_size, int rank,
                   std::chrono::milliseconds timeout);

}  // namespace ds::store
