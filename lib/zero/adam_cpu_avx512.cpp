// CPU Adam, AVX-512 (F, BW, VL, DQ) kernel: 16 fp32 lanes, tails with masked loads and stores.
// Compiled with AVX-512 flags (cmake/DsHelpers.cmake): runs only after cpu_supports(avx512).
// Follows the notes "Same bits on every ISA" and "ISA files stay self-contained" in
// zero/adam_kernels.hpp: intrinsics and this file's own static functions only.
// GCC 12 reports its own _mm512_undefined_* helpers (used inside the masked intrinsics) as
// "may be used uninitialized"; a known false positive of the compiler's headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "zero/adam_kernels.hpp"

namespace ds::zero::detail {
namespace {

constexpr int k_lanes = 16;

struct Vconst {
  __m512 beta1, beta2, one_minus_beta1, one_minus_beta2, eps, bias_correction2, step_size, l2_decay,
      decoupled_decay, grad_scale;
};

// --- loads: 16 (or `mask`ed) elements as fp32 -----------------------------------------------
static inline __m512 load_f32(const float* p, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, p); }

static inline __m512 load_grad(const float* g, __mmask16 mask) { return _mm512_maskz_loadu_ps(mask, g); }
static inline __m512 load_grad(const bf16* g, __mmask16 mask) {
  const __m256i h = _mm256_maskz_loadu_epi16(mask, g);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));  // bf16 is the top half of fp32
}
static inline __m512 load_grad(const f16* g, __mmask16 mask) {
  return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, g));  // exact, subnormals included
}

// --- stores of the updated parameters -------------------------------------------------------
// `o` is the base of the copy, `i` the element index (for NoCopy, `o` is null and unused).
struct NoCopy {};
static inline void store_out(NoCopy*, int64_t, __m512, __mmask16) {}
static inline void store_out(float* o, int64_t i, __m512 x, __mmask16 mask) { _mm512_mask_storeu_ps(o + i, mask, x); }

// Round to nearest even, NaN -> quiet NaN keeping the top payload bits: ds::to_bf16 in integers.
// (Not VCVTNEPS2BF16: it flushes subnormal inputs to zero, to_bf16 does not.)
static inline void store_out(bf16* o, int64_t i, __m512 x, __mmask16 mask) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
  const __m512i quiet_nan = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512i bits = _mm512_mask_blend_epi32(is_nan, rounded, quiet_nan);
  _mm256_mask_storeu_epi16(o + i, mask, _mm512_cvtepi32_epi16(bits));
}

// IEEE round to nearest even (F16C); NaN lanes first become the quiet NaN with no payload, which
// converts to sign|0x7e00 as ds::to_f16 gives.
static inline void store_out(f16* o, int64_t i, __m512 x, __mmask16 mask) {
  const __mmask16 is_nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u)));
  const __m512 canonical = _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_set1_epi32(0x7fc00000)));
  const __m512 y = _mm512_mask_blend_ps(is_nan, x, canonical);
  _mm256_mask_storeu_epi16(o + i, mask, _mm512_cvtps_ph(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// The per-element sequence of adam.hpp on the 16 lanes at [i, i + 16) (those in `mask`).
template <typename G, typename O>
static inline void step16(const Vconst& k, int l2, int decoupled, float* p, const G* g, float* m, float* v, O* o,
                          int64_t i, __mmask16 mask) {
  __m512 gv = _mm512_mul_ps(load_grad(g + i, mask), k.grad_scale);
  __m512 pv = load_f32(p + i, mask);
  __m512 mv = load_f32(m + i, mask);
  __m512 vv = load_f32(v + i, mask);
  if (l2) gv = _mm512_fmadd_ps(pv, k.l2_decay, gv);
  mv = _mm512_fmadd_ps(gv, k.one_minus_beta1, _mm512_mul_ps(mv, k.beta1));
  vv = _mm512_fmadd_ps(_mm512_mul_ps(gv, gv), k.one_minus_beta2, _mm512_mul_ps(vv, k.beta2));
  const __m512 d = _mm512_fmadd_ps(_mm512_sqrt_ps(vv), k.bias_correction2, k.eps);
  const __m512 u = _mm512_div_ps(mv, d);
  if (decoupled) pv = _mm512_fmadd_ps(pv, k.decoupled_decay, pv);
  pv = _mm512_fmadd_ps(u, k.step_size, pv);
  _mm512_mask_storeu_ps(p + i, mask, pv);
  _mm512_mask_storeu_ps(m + i, mask, mv);
  _mm512_mask_storeu_ps(v + i, mask, vv);
  store_out(o, i, pv, mask);
}

template <typename G, typename O>
static void run(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count) {
  const Vconst k{_mm512_set1_ps(c.beta1),           _mm512_set1_ps(c.beta2),     _mm512_set1_ps(c.one_minus_beta1),
                 _mm512_set1_ps(c.one_minus_beta2), _mm512_set1_ps(c.eps),       _mm512_set1_ps(c.bias_correction2),
                 _mm512_set1_ps(c.step_size),       _mm512_set1_ps(c.l2_decay),  _mm512_set1_ps(c.decoupled_decay),
                 _mm512_set1_ps(c.grad_scale)};
  float* p = a.master + begin;
  const G* g = static_cast<const G*>(a.grad) + begin;
  float* m = a.exp_avg + begin;
  float* v = a.exp_avg_sq + begin;
  O* o = static_cast<O*>(a.out);  // null for NoCopy, then never used
  if (o) o += begin;
  const __mmask16 all = static_cast<__mmask16>(0xffff);
  int64_t i = 0;
  if (c.l2 || c.decoupled) {
    for (; i + k_lanes <= count; i += k_lanes) step16(k, c.l2, c.decoupled, p, g, m, v, o, i, all);
  } else {  // no weight decay: let the compiler drop both branches from the hot loop
    for (; i + k_lanes <= count; i += k_lanes) step16(k, 0, 0, p, g, m, v, o, i, all);
  }
  if (i < count) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (count - i)) - 1u);
    step16(k, c.l2, c.decoupled, p, g, m, v, o, i, tail);
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

void adam_kernel_avx512(const AdamConstants& c, const AdamKernelArgs& a, int64_t begin, int64_t count) {
  switch (a.grad_dtype) {
    case DType::f32: return run_out<float>(c, a, begin, count);
    case DType::bf16: return run_out<bf16>(c, a, begin, count);
    case DType::f16: return run_out<f16>(c, a, begin, count);
  }
}

}  // namespace ds::zero::detail
