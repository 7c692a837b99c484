#include "runtime/comm_reduce.hpp"

namespace ds::runtime {
namespace {

// max and min that propagate NaN from either side (std::fmax would drop it).
inline float max_nan(float a, float b) { return (a > b || a != a) ? a : b; }
inline float min_nan(float a, float b) { return (a < b || a != a) ? a : b; }

// Loops kept branch-free inside so the compiler vectorises them; dst may alias acc or own exactly.
template <typename T, typename Combine>
void combine_loop(T* dst, const T* acc, const T* own, int64_t count, Combine combine) {
  for (int64_t i = 0; i < count; ++i) dst[i] = from_float<T>(combine(to_float(acc[i]), to_float(own[i])));
}

template <typename T>
void reduce_typed(void* dst, const void* acc, const void* own, int64_t count, ReduceOp op) {
  T* d = static_cast<T*>(dst);
  const T* a = static_cast<const T*>(acc);
  const T* o = static_cast<const T*>(own);
  switch (op) {
    case ReduceOp::sum: combine_loop(d, a, o, count, [](float x, float y) { return x + y; }); return;
    case ReduceOp::max: combine_loop(d, a, o, count, max_nan); return;
    case ReduceOp::min: combine_loop(d, a, o, count, min_nan); return;
  }
}

}  // namespace

void reduce_elements(void* dst, const void* acc, const void* own, int64_t count, DType dtype, ReduceOp op) {
  visit_dtype(dtype, [&](auto tag) { reduce_typed<decltype(tag)>(dst, acc, own, count, op); });
}

}  // namespace ds::runtime
