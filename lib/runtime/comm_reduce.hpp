// The element-wise combine step of CPU collectives (Note [comm precision] in comm.hpp).
#pragma once

#include <cstdint>

#include "runtime/comm.hpp"
#include "runtime/dtype.hpp"

namespace ds::runtime {

// dst[i] = op(acc[i], own[i]) for i in [0, count): both loaded as fp32, combined in fp32, stored in
// dtype with round to nearest even. acc is the partial result that arrived from the previous rank,
// own this rank's contribution. dst may alias acc or own exactly (element-wise in place), nothing else.
void reduce_elements(void* dst, const void* acc, const void* own, int64_t count, DType dtype, ReduceOp op);

}  // namespace ds::runtime
