// Partition arithmetic: how every unit's flat buffer is split across the data-parallel ranks.
//
// Note [unit sharding] (cited by the engine, checkpoints and the estimator):
//   A unit u (model/params.hpp) of n_u elements is padded to P_u = round_up(n_u, ws * k_shard_align)
//   elements and split into ws equal slices of S_u = P_u / ws; rank r owns elements
//   [r * S_u, (r+1) * S_u) of the unit's flat buffer. Padding (zeros, never updated) sits at the end,
//   so it falls on the last rank(s). A rank's shard space is the concatenation of its slices of
//   every unit in unit order: unit u's slice starts at shard_offset(u) = sum_{v<u} S_v.
//   Every stage uses this one layout — stage 0/1/2 keep full unit buffers besides it, stage 3 only
//   the shards — so checkpoints and re-partitioning work between any stages, and a gathered unit
//   buffer (P_u elements) is exactly what an all-gather of the ws slices produces, rank-major, with
//   no reordering. (DeepSpeed stage 1/2 instead flattens a whole param group and lets params
//   straddle rank boundaries; stage 3 pads per param: research/zero-anchors.md §3.1, §3.3.)
//   k_shard_align = 16 elements: every slice starts 64-byte aligned in fp32 and 32-byte in 16-bit,
//   so vector loads in CPU Adam and CUDA kernels are aligned at every slice start.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/params.hpp"

namespace ds::zero {

inline constexpr int64_t k_shard_align = 16;

// A piece of a parameter inside one rank's shard space.
struct ShardPiece {
  model::ParamId param = -1;
  int64_t shard_offset = 0;   // where the piece starts in the rank's shard space
  int64_t param_offset = 0;   // where it starts inside the (flattened) parameter
  int64_t count = 0;
};

struct UnitPartition {
  int64_t numel = 0;          // n_u
  int64_t padded = 0;         // P_u
  int64_t slice = 0;          // S_u = P_u / ws
  int64_t shard_offset = 0;   // start of this unit's slice in every rank's shard space
};

class Partition {
 public:
  Partition(const model::ModelLayout& layout, int world_size, int rank);

  int world_size() const { return m_world_size; }
  int rank() const { return m_rank; }
  const std::vector<UnitPartition>& units() const { return m_units; }
  const UnitPartition& unit(int u) const { return m_units.at(static_cast<size_t>(u)); }

  // Elements in each rank's shard space (the same on every rank), padding included.
  int64_t shard_numel() const { return m_shard_numel; }
  // Elements of all units' padded buffers together (= shard_numel() * world_size()).
  int64_t padded_numel() const { return m_shard_numel * m_world_size; }

  // Range [begin, end) of unit u's flat buffer that `rank` owns, clipped to the unpadded part
  // (empty when that slice is all padding).
  std::pair<int64_t, int64_t> owned_range(int unit, int rank) const;

  // The parameter pieces in this rank's shard space, in shard order (padding is not a piece).
  const std::vector<ShardPiece>& pieces() const { return m_pieces; }

  // Which rank owns element `index` of unit u's flat buffer.
  int owner_of(int unit, int64_t index) const;

  std::string describe() const;  // one line per unit, for --verbose logs and test failures

 private:
  int m_world_size = 1;
  int m_rank = 0;
  int64_t m_shard_numel = 0;
  std::vector<UnitPartition> m_units;
  std::vector<ShardPiece> m_pieces;
};

int64_t round_up(int64_t value, int64_t multiple);

}  // namespace ds::zero
