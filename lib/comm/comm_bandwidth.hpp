// Bandwidth figures for collective benchmarks, with nccl-tests' conventions (its PERFORMANCE.md):
//   bytes  = the size of the whole buffer: count*elt for all_reduce and broadcast, size*chunk*elt for
//            reduce_scatter (its send) and all_gather (its recv);
//   algBw  = bytes / time;
//   busBw  = algBw * 2(n-1)/n for all_reduce, algBw * (n-1)/n for reduce_scatter and all_gather,
//            algBw for broadcast: the rate each link carried with a ring, comparable across world sizes
//            and against the hardware's peak.
#pragma once

#include <cstdint>

namespace ds::comm {

enum class Collective { all_reduce, reduce_scatter, all_gather, broadcast };
const char* collective_name(Collective kind);

struct Bandwidth {
  double alg_gbps = 0;  // algBw in GB/s (1e9 bytes per second)
  double bus_gbps = 0;  // busBw in GB/s
};

// bytes as defined above; seconds per op (> 0); world_size >= 1.
Bandwidth collective_bandwidth(Collective kind, int64_t bytes, double seconds, int world_size);

}  // namespace ds::comm
