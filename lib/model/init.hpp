// Parameter initialisation as a pure function of (seed, param id, element index), so that any rank
// can initialise any slice of any parameter without materialising the rest: a ZeRO-3 rank
// initialises only its shard (like deepspeed.zero.Init) and every world size gets the same model.
//
// The generator is Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
// SC'11), counter-based: the key is the 64-bit seed, the counter is (element pair index (64 bits),
// param id, a stream tag). One Philox block gives two normals by Box–Muller (computed in double):
// element 2j takes the cosine branch, element 2j+1 the sine branch of block j.
#pragma once

#include <array>
#include <cstdint>

#include "model/params.hpp"

namespace ds::model {

// One Philox-4x32-10 block; matches Random123's known-answer vectors.
std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

// Writes elements [offset, offset + count) of param `id` (described by `info`) to out, in fp32:
// zeros, ones, or normal(0, info.init_std) from the generator above. Threads over the slice.
void init_param_slice(const ParamInfo& info, ParamId id, uint64_t seed, int64_t offset, int64_t count, float* out);

}  // namespace ds::model
