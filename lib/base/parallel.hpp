// CPU parallelism for the model's ops and the CPU optimizer: one process-wide pool of worker
// threads, and parallel_for over an index range. The pool size comes from DSLAUNCH_NUM_THREADS,
// else OMP_NUM_THREADS, else the cores this process may run on divided by LOCAL_WORLD_SIZE (so
// ranks sharing a machine do not oversubscribe it), at least 1.
#pragma once

#include <cstdint>
#include <functional>

namespace ds {

int num_threads();                 // threads parallel_for uses (the caller included)
void set_num_threads(int threads); // not from inside a parallel region (it would wait for itself)

// Calls fn(begin, end) on disjoint sub-ranges covering [0, n), each at least `grain` long (but the
// last), from up to num_threads() threads; returns when all calls returned. Exceptions thrown by
// fn are rethrown here (the first one). Nested calls (from inside fn) run serially in the calling
// thread. Calls from several threads at once all run in parallel, sharing the pool's threads about
// evenly (Note [concurrent regions], parallel.cpp); each caller's thread always works on its own
// region. set_num_threads waits until no region runs.
// The split is not part of the contract: code whose result depends on it (partial sums) must cut
// its work into fixed blocks itself and parallelise over blocks, so results are bitwise the same
// whatever the thread count.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

}  // namespace ds
