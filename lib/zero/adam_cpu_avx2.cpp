// CPU Adam, AVX2 + FMA + F16C kernel: 8 fp32 lanes; a tail of fewer than 8 elements is copied
// into zero-padded lane buffers, stepped by the same vector code and copied back.
// Compiled with AVX2 flags (cmake/DsHelpers.cmake): runs only after cpu_supports(avx2).
// Follows the notes "Same bits on every ISA" and "ISA files stay self-contained" in
// zero/adam_kernels.hpp: intrinsics, memcpy and this file's own static functions only.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "zero/adam_kernels.hpp"

namespace ds::zero::detail {
namespace {

constexpr int k_lanes = 8;

struct Vconst {
  __m256 beta1, beta2, one_minus_beta1, one_minus_beta2, eps, bias_correction2, step_size, l2_decay,
      decoupled_decay, grad_scale;
};

// --- loads: 8 elements as fp32 ------------------------------------------------------------------
static inline __m256 load_grad(const float* g) { return _mm256_loadu_ps(g); }
static inline __m256 load_grad(const bf16* g) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(g));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));  // bf16 is the top half of fp32
}
static inline __m256 load_grad(const f16* g) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));  // exact, subnormals included
}

// --- stores of the updated parameters (o == nullptr only for NoCopy) -----------------------------
struct NoCopy {};
static inline void store_out(NoCopy*, __m256) {}
static inline void store_out(float* o, __m256 x) { _mm256_storeu_ps(o, x); }

// Round to nearest even, NaN -> quiet NaN keeping the top payload bits: ds::to_bf16 in integers.
static inline void store_out(bf16* o, __m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb)), 16);
  const __m256i quiet_nan = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i is_nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  const __m256i bits = _mm256_blendv_epi8(rounded, quiet_nan, is_nan);
  // packus works per 128-bit lane: [b0..b3 b0..b3 | b4..b7 b4..b7]; qwords 0 and 2 hold b0..b7.
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(bits, bits), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(packed));
}

// IEEE round to nearest even (F16C); NaN lanes first become the quiet NaN with no payload, which
// converts to sign|0x7e00 as ds::to_f16 gives.
static inline void store_out(f16* o, __m256 x) {
  const __m256 is_nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256i sign = _mm256_and_si256(_mm256_castps_si256(x), _mm256_set1_epi32(static_cast<int>(0x80000000u)));
  const __m256 canonical = _mm256_castsi256_ps(_mm256_or_si256(sign, _mm256_set1_epi32(0x7fc00000)));
  const __m256 y = _mm256_blendv_ps(x, canonical, is_nan);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// The per-element sequence of adam.hpp on 8 lanes.
template <typename G, typename O>
static inline void step8(const Vconst& k, int l2, int decoupled, float* p, const G* g, float* m, float* v, O* o) {
  __m256 gv = _mm256_mul_ps(load_grad(g), k.grad_scale);
  __m256 pv = _mm256_loadu_ps(p);
  __m256 mv = _mm256_loadu_ps(m);
  __m256 vv = _mm256_loadu_ps(v);
  if (l2) gv = _mm256_fmadd_ps(pv, k.l2_decay, gv);
  mv = _mm256_fmadd_ps(gv, k.one_minus_beta1, _mm256_mul_ps(mv, k.beta1));
  vv = _mm256_fmadd_ps(_mm256_mul_ps(gv, gv), k.one_minus_beta2, _mm256_mul_ps(vv, k.beta2));
  const __m256 d = _mm256_fmadd_ps(_mm256_sqrt_ps(vv), k.bias_correction2, k.eps);
  const __m256 u = _mm256_div_ps(mv, d);
  if (decoupled) pv = _mm256_fmadd_ps(pv, k.decoupled_decay, pv);
  pv = _mm256_fmadd_ps(u, k.step_size, pv);
  _mm256_storeu_ps(p, pv);
  _mm256_storeu_ps(m, mv);
  _mm256_storeu_ps(v, vv);
  store_out(o, pv);
}

template <typename G, typename O>
static void run(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count) {
  const Vconst k{_mm256_set1_ps(c.beta1),           _mm256_set1_ps(c.beta2),     _mm256_set1_ps(c.one_minus_beta1),
                 _mm256_set1_ps(c.one_minus_beta2), _mm256_set1_ps(c.eps),       _mm256_set1_ps(c.bias_correction2),
                 _mm256_set1_ps(c.step_size),       _mm256_set1_ps(c.l2_decay),  _mm256_set1_ps(c.decoupled_decay),
                 _mm256_set1_ps(c.grad_scale)};
  float* p = a.master + begin;
  const G* g = static_cast<const G*>(a.grad) + begin;
  float* m = a.exp_avg + begin;
  float* v = a.exp_avg_sq + begin;
  O* o = static_cast<O*>(a.out);  // null for NoCopy, then never used
  if (o) o += begin;
  int64_t i = 0;
  if (c.l2 || c.decoupled) {
    for (; i + k_lanes <= count; i += k_lanes) step8(k, c.l2, c.decoupled, p + i, g + i, m + i, v + i, o ? o + i : o);
  } else {  // no weight decay: let the compiler drop both branches from the hot loop
    for (; i + k_lanes <= count; i += k_lanes) step8(k, 0, 0, p + i, g + i, m + i, v + i, o ? o + i : o);
  }
  const int64_t rest = count - i;
  if (rest > 0) {
    alignas(32) float pt[k_lanes] = {}, mt[k_lanes] = {}, vt[k_lanes] = {};
    alignas(32) unsigned char gt[k_lanes * sizeof(float)] = {};
    alignas(32) unsigned char ot[k_lanes * sizeof(float)] = {};
    const size_t rest_bytes = static_cast<size_t>(rest) * sizeof(float);
    std::memcpy(pt, p + i, rest_bytes);
    std::memcpy(mt, m + i, rest_bytes);
    std::memcpy(vt, v + i, rest_bytes);
    std::memcpy(gt, g + i, static_cast<size_t>(rest) * sizeof(G));
    O* ot_typed = o ? reinterpret_cast<O*>(ot) : o;
    step8(k, c.l2, c.decoupled, pt, reinterpret_cast<const G*>(gt), mt, vt, ot_typed);
    std::memcpy(p + i, pt, rest_bytes);
    std::memcpy(m + i, mt, rest_bytes);
    std::memcpy(v + i, vt, rest_bytes);
    if (o) std::memcpy(o + i, ot, static_cast<size_t>(rest) * sizeof(O));
  }
}

template <typename G>
static void run_out(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count) {
  if (!a.out) return run<G, NoCopy>(c, a, begin, count);
  switch (a.out_dtype) {
    case DType::f32: return run<G, float>(c, a, begin, count);
    case DType::bf16: return run<G, bf16>(c, a, begin, count);
    case DType::f16: return run<G, f16>(c, a, begin, count);
  }
}

}  // namespace

void adam_kernel_avx2(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count) {
  switch (a.grad_dtype) {
    case DType::f32: return run_out<float>(c, a, begin, count);
    case DType::bf16: return run_out<bf16>(c, a, begin, count);
    case DType::f16: return run_out<f16>(c, a, begin, count);
  }
}

}  // namespace ds::zero::detail
