#include "comm/comm_bandwidth.hpp"

#include "base/check.hpp"

namespace ds::comm {

const char* collective_name(Collective kind) {
  switch (kind) {
    case Collective::all_reduce: return "all_reduce";
    case Collective::reduce_scatter: return "reduce_scatter";
    case Collective::all_gather: return "all_gather";
    case Collective::broadcast: return "broadcast";
  }
  return "?";
}

Bandwidth collective_bandwidth(Collective kind, int64_t bytes, double seconds, int world_size) {
  DS_CHECK(seconds > 0 && bytes >= 0 && world_size >= 1, "collective_bandwidth(bytes=", bytes, ", seconds=", seconds,
           ", world_size=", world_size, ")");
  const double n = world_size;
  const double alg = static_cast<double>(bytes) / seconds / 1e9;
  double factor = 1;
  switch (kind) {
    case Collective::all_reduce: factor = 2 * (n - 1) / n; break;
    case Collective::reduce_scatter:
    case Collective::all_gather: factor = (n - 1) / n; break;
    case Collective::broadcast: factor = 1; break;
  }
  return {alg, alg * factor};
}

}  // namespace ds::comm
