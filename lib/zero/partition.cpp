#include "zero/partition.hpp"

#include <algorithm>
#include <sstream>

#include "base/check.hpp"

namespace ds::zero {

int64_t round_up(int64_t value, int64_t multiple) {
  DS_CHECK(multiple > 0 && value >= 0);
  return (value + multiple - 1) / multiple * multiple;
}

Partition::Partition(const model::ModelLayout& layout, int world_size, int rank)
    : m_world_size(world_size), m_rank(rank) {
  DS_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "rank ", rank, " of world ", world_size);
  int64_t offset = 0;
  for (const auto& unit : layout.units) {
    UnitPartition up;
    up.numel = unit.numel;
    up.padded = round_up(std::max<int64_t>(unit.numel, 1), world_size * k_shard_align);
    up.slice = up.padded / world_size;
    up.shard_offset = offset;
    offset += up.slice;
    m_units.push_back(up);
  }
  m_shard_numel = offset;

  // Pieces of this rank: walk each unit's params in layout order and clip them to the owned range.
  for (size_t u = 0; u < layout.units.size(); ++u) {
    const auto& up = m_units[u];
    const int64_t own_begin = static_cast<int64_t>(rank) * up.slice;
    const int64_t own_end = own_begin + up.slice;
    int64_t param_start = 0;
    for (model::ParamId p : layout.units[u].params) {
      const int64_t n = layout.params.at(static_cast<size_t>(p)).numel;
      const int64_t b = std::max(param_start, own_begin);
      const int64_t e = std::min(param_start + n, own_end);
      if (b < e) m_pieces.push_back({p, up.shard_offset + (b - own_begin), b - param_start, e - b});
      param_start += n;
    }
    DS_CHECK(param_start == up.numel, "unit ", layout.units[u].name, " numel ", up.numel, " != sum of params ", param_start);
  }
}

std::pair<int64_t, int64_t> Partition::owned_range(int unit, int rank) const {
  const auto& up = m_units.at(static_cast<size_t>(unit));
  const int64_t b = std::min(up.numel, static_cast<int64_t>(rank) * up.slice);
  const int64_t e = std::min(up.numel, b + up.slice);
  return {b, std::max(b, e)};
}

int Partition::owner_of(int unit, int64_t index) const {
  const auto& up = m_units.at(static_cast<size_t>(unit));
  DS_CHECK(index >= 0 && index < up.padded);
  return static_cast<int>(index / up.slice);
}

std::string Partition::describe() const {
  std::ostringstream out;
  for (size_t u = 0; u < m_units.size(); ++u) {
    const auto& up = m_units[u];
    out << "unit " << u << ": numel " << up.numel << ", padded " << up.padded << ", slice " << up.slice
        << " at shard offset " << up.shard_offset << "\n";
  }
  return out.str();
}

}  // namespace ds::zero
