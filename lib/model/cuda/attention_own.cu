// Our own causal self-attention kernels (AttentionImpl::own; contract in kernels.hpp, lse convention
// in attention_internal.hpp). Two paths:
//
//   tensor cores (bf16/fp16, head size 64): flash-attention-2 style. A block of 4 warps owns a tile
//   of 64 rows; each warp owns 16 of them and keeps its scores, probabilities and accumulators in
//   mma.sync m16n8k16 fragments (fp32 accumulators). Forward walks the key tiles up to the diagonal
//   with an online softmax. Backward recomputes probabilities from lse: one kernel per key tile
//   (dk, dv: walks the query tiles from the diagonal down), one per query tile (dq: walks the key
//   tiles up to the diagonal). Every gradient element is summed by one thread in a fixed order and
//   added to dqkv once: deterministic, no atomics.
//
//   CUDA cores (any storage, head size <= 128, multiple of 8): one warp per row. The lanes split the
//   keys (or queries) 32 at a time; fp32 throughout. Simple and exact, for fp32 runs and odd heads.
//
// Fragment layout of mma.sync.m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"), with
// g = lane / 4 and q = lane % 4: the accumulator element i of n-tile nt sits at row g + 8*(i/2),
// column nt*8 + 2q + i%2; the A operand's four registers hold rows g, g+8, g, g+8 at columns 2q..2q+1,
// 2q..2q+1, 2q+8.., 2q+8..; B's two registers hold k rows 2q..2q+1 and 2q+8..2q+9 of column g. So an
// accumulator tile converted to 16-bit pairs IS the A operand of the next product (P·V, dS·K): the
// probabilities never leave registers.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "base/check.hpp"
#include "device/cuda_check.hpp"
#include "model/cuda/attention_internal.hpp"

namespace ds::model::cuda::attn {
namespace {

constexpr float k_log2e = 1.4426950408889634f;
constexpr float k_ln2 = 0.6931471805599453f;
constexpr unsigned k_full_mask = 0xffffffffu;

// ---- storage <-> fp32 (round to nearest even, as base/dtype.hpp) ------------------------------------
__device__ __forceinline__ float load_f(float x) { return x; }
__device__ __forceinline__ float load_f(ds::bf16 x) { return __uint_as_float(static_cast<uint32_t>(x.bits) << 16); }
__device__ __forceinline__ float load_f(ds::f16 x) { return __half2float(__ushort_as_half(x.bits)); }

template <typename S>
__device__ __forceinline__ S store_f(float x) {
  if constexpr (std::is_same_v<S, float>) {
    return x;
  } else if constexpr (std::is_same_v<S, ds::bf16>) {
    return ds::bf16::from_bits(__bfloat16_as_ushort(__float2bfloat16_rn(x)));
  } else {
    return ds::f16::from_bits(__half_as_ushort(__float2half_rn(x)));
  }
}

// Two fp32 values rounded into one 32-bit register of 16-bit values, `lo` in the low half (the
// lower column of an mma operand pair).
template <typename S>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<S, ds::bf16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

template <typename S>
__device__ __forceinline__ float2 unpack2(uint32_t v) {
  const ds::bf16 lo_b = ds::bf16::from_bits(static_cast<uint16_t>(v & 0xffffu));
  const ds::bf16 hi_b = ds::bf16::from_bits(static_cast<uint16_t>(v >> 16));
  if constexpr (std::is_same_v<S, ds::bf16>) {
    return make_float2(load_f(lo_b), load_f(hi_b));
  } else {
    return make_float2(load_f(ds::f16::from_bits(lo_b.bits)), load_f(ds::f16::from_bits(hi_b.bits)));
  }
}

// Butterfly reductions: every lane ends with the same bits (each step adds the same two numbers in
// every lane of a pair), so the result is deterministic and warp-uniform.
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(k_full_mask, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(k_full_mask, v, o));
  return v;
}

// =====================================================================================================
// Tensor-core path: bf16/fp16, head size 64.
// =====================================================================================================
constexpr int k_tile = 64;                // rows of a query or key tile
constexpr int k_hs = k_tc_head_size;      // 64
constexpr int k_ld = k_hs + 8;            // smem row stride in elements: 144 bytes, conflict-free fragments
constexpr int k_tc_threads = 128;         // 4 warps x 16 rows
using Tile = uint16_t[k_tile][k_ld];      // one 64x64 tile of 16-bit values in shared memory

// d (16x8 fp32) += a (16x16) · b (16x8).
template <typename S>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // never launched there: CMakeLists.txt builds this file for sm_90 too, which the H100/H200 run
#else
  if constexpr (std::is_same_v<S, ds::bf16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

// Four 8x8 16-bit matrices from shared memory, transposed: lanes 8i..8i+7 give the row addresses of
// matrix i; register i of lane l receives matrix i's elements [2(l%4)][l/4] and [2(l%4)+1][l/4].
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const uint16_t* smem_row) {
  const uint32_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// tile rows [0, 64) <- src rows [0, rows_valid) (each 64 contiguous elements, row_stride apart),
// zeros below. src and row_stride*2 bytes are 16-byte aligned (the launchers check).
template <typename S>
__device__ __forceinline__ void load_tile(Tile& dst, const S* src, int64_t row_stride, int rows_valid) {
  for (int i = threadIdx.x; i < k_tile * (k_hs / 8); i += k_tc_threads) {
    const int r = i / (k_hs / 8), c = (i % (k_hs / 8)) * 8;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r < rows_valid) v = *reinterpret_cast<const uint4*>(src + r * row_stride + c);
    *reinterpret_cast<uint4*>(&dst[r][c]) = v;
  }
}

// A operand fragments of tile rows [r0, r0+16) over all 64 columns (four k-steps of 16).
__device__ __forceinline__ void load_a(uint32_t (&a)[4][4], const Tile& x, int r0, int lane) {
  const int g = lane >> 2, q = lane & 3;
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    a[kk][0] = *reinterpret_cast<const uint32_t*>(&x[r0 + g][kk * 16 + 2 * q]);
    a[kk][1] = *reinterpret_cast<const uint32_t*>(&x[r0 + g + 8][kk * 16 + 2 * q]);
    a[kk][2] = *reinterpret_cast<const uint32_t*>(&x[r0 + g][kk * 16 + 8 + 2 * q]);
    a[kk][3] = *reinterpret_cast<const uint32_t*>(&x[r0 + g + 8][kk * 16 + 8 + 2 * q]);
  }
}

// acc (16x64) += A (16x64, fragments) · xᵀ, x a 64x64 tile whose rows are the output columns:
// q·kᵀ, dout·vᵀ, k·qᵀ, v·doutᵀ.
template <typename S>
__device__ __forceinline__ void mma_abt(float (&acc)[8][4], const uint32_t (&a)[4][4], const Tile& x, int lane) {
  const int g = lane >> 2, q = lane & 3;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      const uint32_t b0 = *reinterpret_cast<const uint32_t*>(&x[nt * 8 + g][kk * 16 + 2 * q]);
      const uint32_t b1 = *reinterpret_cast<const uint32_t*>(&x[nt * 8 + g][kk * 16 + 8 + 2 * q]);
      mma16816<S>(acc[nt], a[kk], b0, b1);
    }
  }
}

// acc (16x64) += P (16x64, an accumulator tile rounded to S) · x, x a 64x64 tile whose rows are the
// reduction index: p·v, pᵀ·dout, dsᵀ·q, ds·k.
template <typename S>
__device__ __forceinline__ void mma_px(float (&acc)[8][4], const float (&p)[8][4], const Tile& x, int lane) {
#pragma unroll
  for (int kc = 0; kc < 4; ++kc) {
    uint32_t a[4];
    a[0] = pack2<S>(p[2 * kc][0], p[2 * kc][1]);
    a[1] = pack2<S>(p[2 * kc][2], p[2 * kc][3]);
    a[2] = pack2<S>(p[2 * kc + 1][0], p[2 * kc + 1][1]);
    a[3] = pack2<S>(p[2 * kc + 1][2], p[2 * kc + 1][3]);
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, &x[kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8][np * 16 + (lane >> 4) * 8]);
      mma16816<S>(acc[2 * np], a, b[0], b[1]);
      mma16816<S>(acc[2 * np + 1], a, b[2], b[3]);
    }
  }
}

__device__ __forceinline__ void zero(float (&acc)[8][4]) {
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[nt][i] = 0.0f;
}

// dst[row][col..col+1] = round(dst + scale * (v0, v1)), two 16-bit values at once (col is even).
template <typename S>
__device__ __forceinline__ void add_pair(S* dst, float v0, float v1, float scale) {
  uint32_t* p = reinterpret_cast<uint32_t*>(dst);
  const float2 old = unpack2<S>(*p);
  *p = pack2<S>(old.x + v0 * scale, old.y + v1 * scale);
}

// grid (B*NH, ceil(T/64)); the last query tile (most key tiles) is scheduled first.
// out is (B,T,C), lse is (B,NH,T), qkv is (B,T,3C).
template <typename S>
__global__ void __launch_bounds__(k_tc_threads)
    attention_forward_tc_kernel(S* out, float* lse, const S* qkv, int T, int C, int NH, float scale_log2) {
  __shared__ __align__(16) Tile qs, ks, vs;
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int qb = gridDim.y - 1 - blockIdx.y, q0 = qb * k_tile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
  const int64_t C3 = 3 * int64_t{C};
  const S* head = qkv + int64_t{b} * T * C3 + h * k_hs;  // q of (b, t=0, h)

  load_tile(qs, head + q0 * C3, C3, min(k_tile, T - q0));
  __syncthreads();
  uint32_t qa[4][4];
  load_a(qa, qs, warp * 16, lane);

  float o[8][4];
  zero(o);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // row max (log2 units), this thread's row-sum part
  for (int kb = 0; kb <= qb; ++kb) {
    const int k0 = kb * k_tile;
    __syncthreads();  // every warp is done with the previous k, v tiles
    load_tile(ks, head + C + k0 * C3, C3, min(k_tile, T - k0));
    load_tile(vs, head + 2 * C + k0 * C3, C3, min(k_tile, T - k0));
    __syncthreads();
    float s[8][4];
    zero(s);
    mma_abt<S>(s, qa, ks, lane);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        s[nt][i] *= scale_log2;
        // Only the diagonal tile has keys after the query (and keys >= T: those only occur in the
        // diagonal tile of the last query tile, after every real query).
        if (kb == qb && nt * 8 + 2 * q + (i & 1) > warp * 16 + g + 8 * (i >> 1)) s[nt][i] = -INFINITY;
      }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(k_full_mask, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(k_full_mask, mx, 2));
      // Finite: key k0 is unmasked for every row of this tile (k0 <= q0 <= row).
      const float m_new = fmaxf(m[r], mx);
      const float alpha = exp2f(m[r] - m_new);  // 0 on the first tile
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        s[nt][2 * r] = exp2f(s[nt][2 * r] - m_new);
        s[nt][2 * r + 1] = exp2f(s[nt][2 * r + 1] - m_new);
        sum += s[nt][2 * r] + s[nt][2 * r + 1];
        o[nt][2 * r] *= alpha;
        o[nt][2 * r + 1] *= alpha;
      }
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
    }
    mma_px<S>(o, s, vs, lane);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(k_full_mask, l[r], 1);
    l[r] += __shfl_xor_sync(k_full_mask, l[r], 2);
    const int t = q0 + warp * 16 + g + 8 * r;
    if (t >= T) continue;
    const float inv = 1.0f / l[r];
    S* o_row = out + (int64_t{b} * T + t) * C + h * k_hs;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
      *reinterpret_cast<uint32_t*>(o_row + nt * 8 + 2 * q) = pack2<S>(o[nt][2 * r] * inv, o[nt][2 * r + 1] * inv);
    if (q == 0) lse[int64_t{bh} * T + t] = (m[r] + log2f(l[r])) * k_ln2;
  }
}

// dk, dv of one key tile: grid (B*NH, ceil(T/64)); key tile blockIdx.y walks the query tiles from
// its diagonal to the end (the first key tiles have the most work and are scheduled first).
// K and V of the tile stay in registers as A fragments; per query tile, with k a key, t a query:
//   Pᵀ[k][t] = exp(score - lse[t]),  dV += Pᵀ·dout,  dPᵀ = v·doutᵀ,  dSᵀ = Pᵀ∘(dPᵀ - D[t]),  dK += dSᵀ·q.
template <typename S>
__global__ void __launch_bounds__(k_tc_threads)
    attention_backward_dkdv_tc_kernel(S* dqkv, const S* dout, const S* qkv, const float* lse, const float* rowdot,
                                      int T, int C, int NH, float scale, float scale_log2) {
  __shared__ __align__(16) Tile xs, ys;  // k, v first; then q, dout of each query tile
  __shared__ float lse_s[k_tile], d_s[k_tile];
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int kb = blockIdx.y, k0 = kb * k_tile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
  const int64_t C3 = 3 * int64_t{C};
  const S* head = qkv + int64_t{b} * T * C3 + h * k_hs;
  const S* dout_head = dout + int64_t{b} * T * C + h * k_hs;
  const float* lse_bh = lse + int64_t{bh} * T;
  const float* d_bh = rowdot + int64_t{bh} * T;

  load_tile(xs, head + C + k0 * C3, C3, min(k_tile, T - k0));
  load_tile(ys, head + 2 * C + k0 * C3, C3, min(k_tile, T - k0));
  __syncthreads();
  uint32_t ka[4][4], va[4][4];
  load_a(ka, xs, warp * 16, lane);
  load_a(va, ys, warp * 16, lane);

  float dk[8][4], dv[8][4];
  zero(dk);
  zero(dv);
  const int n_tiles = gridDim.y;
  for (int qb = kb; qb < n_tiles; ++qb) {
    const int q0 = qb * k_tile, rows = min(k_tile, T - q0);
    __syncthreads();  // every warp is done with the previous tiles (and with k, v)
    load_tile(xs, head + q0 * C3, C3, rows);
    load_tile(ys, dout_head + q0 * int64_t{C}, C, rows);
    for (int i = threadIdx.x; i < k_tile; i += k_tc_threads) {
      lse_s[i] = i < rows ? lse_bh[q0 + i] * k_log2e : 0.0f;
      d_s[i] = i < rows ? d_bh[q0 + i] : 0.0f;
    }
    __syncthreads();
    float p[8][4], dp[8][4];
    zero(p);
    mma_abt<S>(p, ka, xs, lane);
    const bool edge = qb == kb || rows < k_tile;  // the diagonal, or queries past T
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int tq = nt * 8 + 2 * q + (i & 1);                        // query within the tile
        const int key = k0 + warp * 16 + g + 8 * (i >> 1);             // absolute key
        const bool masked = edge && (q0 + tq < key || tq >= rows);
        p[nt][i] = masked ? 0.0f : exp2f(p[nt][i] * scale_log2 - lse_s[tq]);
      }
    zero(dp);
    mma_abt<S>(dp, va, ys, lane);
    mma_px<S>(dv, p, ys, lane);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) dp[nt][i] = p[nt][i] * (dp[nt][i] - d_s[nt * 8 + 2 * q + (i & 1)]);
    mma_px<S>(dk, dp, xs, lane);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = k0 + warp * 16 + g + 8 * r;
    if (key >= T) continue;
    S* row = dqkv + (int64_t{b} * T + key) * C3 + h * k_hs;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      add_pair<S>(row + C + nt * 8 + 2 * q, dk[nt][2 * r], dk[nt][2 * r + 1], scale);
      add_pair<S>(row + 2 * C + nt * 8 + 2 * q, dv[nt][2 * r], dv[nt][2 * r + 1], 1.0f);
    }
  }
}

// dq of one query tile: grid (B*NH, ceil(T/64)), last query tile first; walks the key tiles up to
// the diagonal. q and dout stay in registers:  P = exp(score - lse),  dP = dout·vᵀ,
// dS = P∘(dP - D),  dQ += dS·k.
template <typename S>
__global__ void __launch_bounds__(k_tc_threads)
    attention_backward_dq_tc_kernel(S* dqkv, const S* dout, const S* qkv, const float* lse, const float* rowdot,
                                    int T, int C, int NH, float scale, float scale_log2) {
  __shared__ __align__(16) Tile xs, ys;  // q, dout first; then k, v of each key tile
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int qb = gridDim.y - 1 - blockIdx.y, q0 = qb * k_tile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
  const int64_t C3 = 3 * int64_t{C};
  const S* head = qkv + int64_t{b} * T * C3 + h * k_hs;
  const int rows = min(k_tile, T - q0);

  load_tile(xs, head + q0 * C3, C3, rows);
  load_tile(ys, dout + (int64_t{b} * T + q0) * C + h * k_hs, C, rows);
  __syncthreads();
  uint32_t qa[4][4], da[4][4];
  load_a(qa, xs, warp * 16, lane);
  load_a(da, ys, warp * 16, lane);
  float lse2[2], dd[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = q0 + warp * 16 + g + 8 * r;
    lse2[r] = t < T ? lse[int64_t{bh} * T + t] * k_log2e : 0.0f;
    dd[r] = t < T ? rowdot[int64_t{bh} * T + t] : 0.0f;
  }

  float dq[8][4];
  zero(dq);
  for (int kb = 0; kb <= qb; ++kb) {
    const int k0 = kb * k_tile;
    __syncthreads();
    load_tile(xs, head + C + k0 * C3, C3, min(k_tile, T - k0));
    load_tile(ys, head + 2 * C + k0 * C3, C3, min(k_tile, T - k0));
    __syncthreads();
    float p[8][4], dp[8][4];
    zero(p);
    mma_abt<S>(p, qa, xs, lane);
    zero(dp);
    mma_abt<S>(dp, da, ys, lane);
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int r = i >> 1;
        const bool masked = kb == qb && nt * 8 + 2 * q + (i & 1) > warp * 16 + g + 8 * r;
        const float pr = masked ? 0.0f : exp2f(p[nt][i] * scale_log2 - lse2[r]);
        p[nt][i] = pr * (dp[nt][i] - dd[r]);
      }
    mma_px<S>(dq, p, xs, lane);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int t = q0 + warp * 16 + g + 8 * r;
    if (t >= T) continue;
    S* row = dqkv + (int64_t{b} * T + t) * C3 + h * k_hs;
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) add_pair<S>(row + nt * 8 + 2 * q, dq[nt][2 * r], dq[nt][2 * r + 1], scale);
  }
}

// =====================================================================================================
// CUDA-core path: any storage type, head size <= 128 and a multiple of 8. One warp per row; lane d
// owns dimensions d, d+32, d+64, d+96.
// =====================================================================================================
constexpr int k_row_warps = 4;
constexpr int k_lane_dims = k_max_head_size / 32;

template <typename S>
__device__ __forceinline__ float dot_row(const float* x_sh, const S* y, int hs) {
  float acc = 0.0f;
  for (int d = 0; d < hs; ++d) acc += x_sh[d] * load_f(y[d]);
  return acc;
}

// grid ceil(B*NH*T / 4) blocks of 4 warps; warp w of block i has row (b*NH + h)*T + t = 4i + w.
template <typename S>
__global__ void __launch_bounds__(k_row_warps * 32)
    attention_forward_rows_kernel(S* out, float* lse, const S* qkv, int B, int T, int C, int NH, float scale) {
  __shared__ float q_sh[k_row_warps][k_max_head_size];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t{blockIdx.x} * k_row_warps + warp;
  if (row >= int64_t{B} * NH * T) return;  // whole warps only; nothing below syncs the block
  const int t = static_cast<int>(row % T), h = static_cast<int>((row / T) % NH);
  const int64_t b = row / (int64_t{T} * NH);
  const int hs = C / NH;
  const int64_t C3 = 3 * int64_t{C};
  const S* q_t = qkv + (b * T + t) * C3 + h * hs;
  for (int d = lane; d < hs; d += 32) q_sh[warp][d] = load_f(q_t[d]);
  __syncwarp();
  const S* k_head = qkv + b * T * C3 + C + h * hs;
  const S* v_head = k_head + C;

  float m = -INFINITY, l = 0.0f, acc[k_lane_dims] = {};
  for (int s0 = 0; s0 <= t; s0 += 32) {
    const int s = s0 + lane;
    const float score = s <= t ? dot_row(q_sh[warp], k_head + s * C3, hs) * scale : -INFINITY;
    const float m_new = fmaxf(m, warp_max(score));  // finite: key s0 <= t is valid
    const float alpha = expf(m - m_new);
    const float p = s <= t ? expf(score - m_new) : 0.0f;
    l = l * alpha + warp_sum(p);
    for (int k = 0; k < k_lane_dims; ++k) acc[k] *= alpha;
    const int n = min(32, t - s0 + 1);
    for (int j = 0; j < n; ++j) {
      const float pj = __shfl_sync(k_full_mask, p, j);
      const S* v_s = v_head + (s0 + j) * C3;
      for (int k = 0; k < k_lane_dims; ++k) {
        const int d = lane + 32 * k;
        if (d < hs) acc[k] += pj * load_f(v_s[d]);
      }
    }
    m = m_new;
  }
  S* o = out + (b * T + t) * C + h * hs;
  for (int k = 0; k < k_lane_dims; ++k) {
    const int d = lane + 32 * k;
    if (d < hs) o[d] = store_f<S>(acc[k] / l);
  }
  if (lane == 0) lse[row] = m + logf(l);
}

// dq of one query row (warp per row, as the forward).
template <typename S>
__global__ void __launch_bounds__(k_row_warps * 32)
    attention_backward_dq_rows_kernel(S* dqkv, const S* dout, const S* qkv, const float* lse, const float* rowdot,
                                      int B, int T, int C, int NH, float scale) {
  __shared__ float q_sh[k_row_warps][k_max_head_size], do_sh[k_row_warps][k_max_head_size];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t{blockIdx.x} * k_row_warps + warp;
  if (row >= int64_t{B} * NH * T) return;
  const int t = static_cast<int>(row % T), h = static_cast<int>((row / T) % NH);
  const int64_t b = row / (int64_t{T} * NH);
  const int hs = C / NH;
  const int64_t C3 = 3 * int64_t{C};
  const S* q_t = qkv + (b * T + t) * C3 + h * hs;
  const S* do_t = dout + (b * T + t) * C + h * hs;
  for (int d = lane; d < hs; d += 32) {
    q_sh[warp][d] = load_f(q_t[d]);
    do_sh[warp][d] = load_f(do_t[d]);
  }
  __syncwarp();
  const S* k_head = qkv + b * T * C3 + C + h * hs;
  const S* v_head = k_head + C;
  const float lse_t = lse[row], d_t = rowdot[row];

  float acc[k_lane_dims] = {};
  for (int s0 = 0; s0 <= t; s0 += 32) {
    const int s = s0 + lane;
    float ds = 0.0f;
    if (s <= t) {
      const float p = expf(dot_row(q_sh[warp], k_head + s * C3, hs) * scale - lse_t);
      ds = p * (dot_row(do_sh[warp], v_head + s * C3, hs) - d_t);
    }
    const int n = min(32, t - s0 + 1);
    for (int j = 0; j < n; ++j) {
      const float dsj = __shfl_sync(k_full_mask, ds, j);
      const S* k_s = k_head + (s0 + j) * C3;
      for (int k = 0; k < k_lane_dims; ++k) {
        const int d = lane + 32 * k;
        if (d < hs) acc[k] += dsj * load_f(k_s[d]);
      }
    }
  }
  S* g = dqkv + (b * T + t) * C3 + h * hs;
  for (int k = 0; k < k_lane_dims; ++k) {
    const int d = lane + 32 * k;
    if (d < hs) g[d] = store_f<S>(load_f(g[d]) + acc[k] * scale);
  }
}

// dk, dv of one key row s (warp per row): walks the queries t >= s, 32 at a time.
template <typename S>
__global__ void __launch_bounds__(k_row_warps * 32)
    attention_backward_dkdv_rows_kernel(S* dqkv, const S* dout, const S* qkv, const float* lse, const float* rowdot,
                                        int B, int T, int C, int NH, float scale) {
  __shared__ float k_sh[k_row_warps][k_max_head_size], v_sh[k_row_warps][k_max_head_size];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t{blockIdx.x} * k_row_warps + warp;
  if (row >= int64_t{B} * NH * T) return;
  const int s = static_cast<int>(row % T), h = static_cast<int>((row / T) % NH);
  const int64_t b = row / (int64_t{T} * NH);
  const int64_t bh_t = row - s;  // (b*NH + h) * T
  const int hs = C / NH;
  const int64_t C3 = 3 * int64_t{C};
  const S* k_s = qkv + (b * T + s) * C3 + C + h * hs;
  for (int d = lane; d < hs; d += 32) {
    k_sh[warp][d] = load_f(k_s[d]);
    v_sh[warp][d] = load_f(k_s[C + d]);
  }
  __syncwarp();
  const S* q_head = qkv + b * T * C3 + h * hs;
  const S* do_head = dout + b * T * C + h * hs;

  float dk[k_lane_dims] = {}, dv[k_lane_dims] = {};
  for (int t0 = s; t0 < T; t0 += 32) {
    const int t = t0 + lane;
    float p = 0.0f, ds = 0.0f;
    if (t < T) {
      p = expf(dot_row(k_sh[warp], q_head + t * C3, hs) * scale - lse[bh_t + t]);
      ds = p * (dot_row(v_sh[warp], do_head + int64_t{t} * C, hs) - rowdot[bh_t + t]);
    }
    const int n = min(32, T - t0);
    for (int j = 0; j < n; ++j) {
      const float pj = __shfl_sync(k_full_mask, p, j), dsj = __shfl_sync(k_full_mask, ds, j);
      const S* q_t = q_head + (t0 + j) * C3;
      const S* do_t = do_head + int64_t{t0 + j} * C;
      for (int k = 0; k < k_lane_dims; ++k) {
        const int d = lane + 32 * k;
        if (d < hs) {
          dv[k] += pj * load_f(do_t[d]);
          dk[k] += dsj * load_f(q_t[d]);
        }
      }
    }
  }
  S* g = dqkv + (b * T + s) * C3 + h * hs;
  for (int k = 0; k < k_lane_dims; ++k) {
    const int d = lane + 32 * k;
    if (d < hs) {
      g[C + d] = store_f<S>(load_f(g[C + d]) + dk[k] * scale);
      g[2 * C + d] = store_f<S>(load_f(g[2 * C + d]) + dv[k]);
    }
  }
}

// D[(b*NH + h)*T + t] = Σ_d dout[b,t,h*hs+d] · out[b,t,h*hs+d] in fp32, one warp per row.
template <typename S>
__global__ void __launch_bounds__(k_row_warps * 32)
    attention_backward_rowdot_kernel(float* rowdot, const S* dout, const S* out, int B, int T, int C, int NH) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t row = int64_t{blockIdx.x} * k_row_warps + warp;
  if (row >= int64_t{B} * NH * T) return;
  const int t = static_cast<int>(row % T), h = static_cast<int>((row / T) % NH);
  const int64_t b = row / (int64_t{T} * NH);
  const int hs = C / NH;
  const int64_t off = (b * T + t) * C + h * hs;
  float acc = 0.0f;
  for (int d = lane; d < hs; d += 32) acc += load_f(dout[off + d]) * load_f(out[off + d]);
  acc = warp_sum(acc);
  if (lane == 0) rowdot[row] = acc;
}

template <typename S>
__global__ void accumulate_kernel(S* dst, const S* add, int64_t n) {
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = store_f<S>(load_f(dst[i]) + load_f(add[i]));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The tensor-core path runs bf16/fp16 heads of 64 on 16-byte aligned buffers.
template <typename S>
bool use_tensor_cores(int C, int NH, std::initializer_list<const void*> buffers) {
  if constexpr (std::is_same_v<S, float>) {
    return false;
  } else {
    if (C / NH != k_tc_head_size) return false;
    for (const void* p : buffers)
      if (!aligned16(p)) return false;
    return true;
  }
}

unsigned row_blocks(int B, int T, int NH) {
  const int64_t rows = int64_t{B} * NH * T;
  return static_cast<unsigned>((rows + k_row_warps - 1) / k_row_warps);
}

dim3 tile_grid(int B, int T, int NH) {
  DS_CHECK(int64_t{B} * NH <= 0x7fffffff && (T + k_tile - 1) / k_tile <= 65535, "attention grid too large: B=", B,
           " NH=", NH, " T=", T);
  return dim3(static_cast<unsigned>(B * NH), static_cast<unsigned>((T + k_tile - 1) / k_tile));
}

}  // namespace

template <typename S>
void own_forward(S* out, float* lse, const S* qkv, int B, int T, int C, int NH, cudaStream_t stream) {
  // out is (B,T,C), lse is (B,NH,T), qkv is (B,T,3C); the front door checked the shape.
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  if (use_tensor_cores<S>(C, NH, {out, qkv})) {
    attention_forward_tc_kernel<S><<<tile_grid(B, T, NH), k_tc_threads, 0, stream>>>(out, lse, qkv, T, C, NH,
                                                                                     scale * k_log2e);
  } else {
    attention_forward_rows_kernel<S><<<row_blocks(B, T, NH), k_row_warps * 32, 0, stream>>>(out, lse, qkv, B, T, C,
                                                                                           NH, scale);
  }
  DS_CUDA_LAUNCH_CHECK();
}

template <typename S>
void own_backward(S* dqkv, const S* dout, const S* qkv, const S* out, const float* lse, int B, int T, int C, int NH,
                  void* scratch, cudaStream_t stream) {
  // dqkv is (B,T,3C) (+=), dout and out are (B,T,C), qkv is (B,T,3C), lse is (B,NH,T);
  // scratch holds D (B,NH,T) fp32. Stream order makes D complete before the gradient kernels read it.
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  float* rowdot = static_cast<float*>(scratch);
  attention_backward_rowdot_kernel<S><<<row_blocks(B, T, NH), k_row_warps * 32, 0, stream>>>(rowdot, dout, out, B, T,
                                                                                            C, NH);
  DS_CUDA_LAUNCH_CHECK();
  if (use_tensor_cores<S>(C, NH, {dqkv, dout, qkv})) {
    // The two kernels write disjoint parts of dqkv (k,v columns vs q columns): no ordering needed
    // between them beyond the stream's.
    attention_backward_dkdv_tc_kernel<S><<<tile_grid(B, T, NH), k_tc_threads, 0, stream>>>(
        dqkv, dout, qkv, lse, rowdot, T, C, NH, scale, scale * k_log2e);
    DS_CUDA_LAUNCH_CHECK();
    attention_backward_dq_tc_kernel<S><<<tile_grid(B, T, NH), k_tc_threads, 0, stream>>>(
        dqkv, dout, qkv, lse, rowdot, T, C, NH, scale, scale * k_log2e);
    DS_CUDA_LAUNCH_CHECK();
  } else {
    attention_backward_dkdv_rows_kernel<S><<<row_blocks(B, T, NH), k_row_warps * 32, 0, stream>>>(
        dqkv, dout, qkv, lse, rowdot, B, T, C, NH, scale);
    DS_CUDA_LAUNCH_CHECK();
    attention_backward_dq_rows_kernel<S><<<row_blocks(B, T, NH), k_row_warps * 32, 0, stream>>>(
        dqkv, dout, qkv, lse, rowdot, B, T, C, NH, scale);
    DS_CUDA_LAUNCH_CHECK();
  }
}

template <typename S>
void accumulate(S* dqkv, const S* add, int64_t n, cudaStream_t stream) {
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, int64_t{132} * 16);
  accumulate_kernel<S><<<static_cast<unsigned>(std::max<int64_t>(blocks, 1)), threads, 0, stream>>>(dqkv, add, n);
  DS_CUDA_LAUNCH_CHECK();
}

#define DS_INSTANTIATE(S)                                                                                          \
  template void own_forward<S>(S*, float*, const S*, int, int, int, int, cudaStream_t);                            \
  template void own_backward<S>(S*, const S*, const S*, const S*, const float*, int, int, int, int, void*,        \
                                cudaStream_t);                                                                     \
  template void accumulate<S>(S*, const S*, int64_t, cudaStream_t);
DS_INSTANTIATE(float)
DS_INSTANTIATE(ds::bf16)
DS_INSTANTIATE(ds::f16)
#undef DS_INSTANTIATE

}  // namespace ds::model::cuda::attn
