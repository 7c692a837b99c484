#include "comm/comm_reduce.hpp"


namespace ds::comm {
namespace {

// max and min that propagate NaN from either side (std::fmax would drop it).
inline float max_nan(float a, float b) { return (a > b || a != a) ? a : b; }
inline float min_nan(float a, float b) { return (a < b || a != a) ? a : b; }

// Element loads and stores without branches (comm_detail), so the block loops below vectorise.
inline float load(float x) { return x; }
inline float load(bf16 x) { return comm_detail::load_fast(x); }
inline float load(f16 x) { return comm_detail::load_fast(x); }

template <typename T> T store(float x);
template <> inline float store<float>(float x) { return x; }
template <> inline bf16 store<bf16>(float x) { return comm_detail::store_fast_bf16(x); }
template <> inline f16 store<f16>(float x) { return comm_detail::store_fast_f16(x); }

// Blocks of a fixed size: each block is loaded into fp32 arrays before anything is stored, which
// makes exact aliasing of dst with acc or own safe, and the fixed trip counts let the compiler
// vectorise at -O2 without alias checks or epilogues.
constexpr int64_t k_block = 16;

template <typename T, typename Combine>
void combine_loop(T* dst, const T* acc, const T* own, int64_t count, Combine combine) {
  int64_t i = 0;
  for (; i + k_block <= count; i += k_block) {
    float a[k_block], o[k_block];
    for (int64_t j = 0; j < k_block; ++j) a[j] = load(acc[i + j]);
    for (int64_t j = 0; j < k_block; ++j) o[j] = load(own[i + j]);
    for (int64_t j = 0; j < k_block; ++j) a[j] = combine(a[j], o[j]);
    for (int64_t j = 0; j < k_block; ++j) dst[i + j] = store<T>(a[j]);
  }
  for (; i < count; ++i) dst[i] = store<T>(combine(load(acc[i]), load(own[i])));
}

template <typename T>
void reduce_typed(void* dst, const void* acc, const void* own, int64_t count, ReduceOp op) {
  T* d = static_cast<T*>(dst);
  const T* a = static_cast<const T*>(acc);
  const T* o = static_cast<const T*>(own);
  switch (op) {
    case ReduceOp::sum: combine_loop(d, a, o, count, [](float x, float y) { return x + y; }); return;
    case ReduceOp::max: combine_loop(d, a, o, count, [](float x, float y) { return max_nan(x, y); }); return;
    case ReduceOp::min: combine_loop(d, a, o, count, [](float x, float y) { return min_nan(x, y); }); return;
  }
}

}  // namespace

void reduce_elements(void* dst, const void* acc, const void* own, int64_t count, DType dtype, ReduceOp op) {
  visit_dtype(dtype, [&](auto tag) { reduce_typed<decltype(tag)>(dst, acc, own, count, op); });
}

}  // namespace ds::comm
