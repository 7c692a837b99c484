// gemm_cpu: a cache-blocked product in the BLIS arrangement, kept small.
//
// The output is cut into tiles of k_mc × k_nc; threads take whole tiles (ds::parallel_for), so no
// two threads ever write the same element and no partial sums are ever combined across threads.
// For one tile, K is walked in blocks of k_kc: the A block (k_mc × k_kc) and the B block
// (k_kc × k_nc) are converted to fp32 and packed into the microkernel's panel order (zero-padded
// at the edges), then the microkernel adds each block's contribution into an fp32 copy of the
// tile. Because the microkernel loads the tile, runs its k loop in order and stores it back, every
// element is a single sequential sum over k: the blocking changes speed, never the result.
#include "model/gemm_cpu.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/check.hpp"
#include "base/dtype.hpp"
#include "base/parallel.hpp"

namespace ds::model::detail {
namespace {

constexpr int k_mr = k_gemm_mr;
constexpr int k_nr = k_gemm_nr;
constexpr int64_t k_mc = 16 * k_mr;   // 96 rows of C per tile
constexpr int64_t k_nc = 8 * k_nr;    // 128 columns of C per tile
constexpr int64_t k_kc = 256;         // depth of one packed block: A block 96 KiB, B block 128 KiB

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Portable microkernel with the same contract as gemm_microkernel_avx2 (separate multiply and
// add, so its last bits differ from the FMA kernel's).
void gemm_microkernel_generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc) {
  float acc[k_mr][k_nr];
  for (int r = 0; r < k_mr; ++r)
    for (int j = 0; j < k_nr; ++j) acc[r][j] = c[r * ldc + j];
  for (int64_t k = 0; k < kc; ++k, a += k_mr, b += k_nr)
    for (int r = 0; r < k_mr; ++r)
      for (int j = 0; j < k_nr; ++j) acc[r][j] += a[r] * b[j];
  for (int r = 0; r < k_mr; ++r)
    for (int j = 0; j < k_nr; ++j) c[r * ldc + j] = acc[r][j];
}

using Microkernel = void (*)(int64_t, const float*, const float*, float*, int64_t);

struct KernelChoice {
  Microkernel fn;
  const char* name;
};

KernelChoice choose_kernel() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {gemm_microkernel_avx2, "avx2+fma"};
#endif
  return {gemm_microkernel_generic, "generic"};
}

KernelChoice g_kernel = choose_kernel();  // set before main; changed only by gemm_cpu_select_kernel

const KernelChoice& kernel() { return g_kernel; }

// Packs A(i0.., k0..) (mc × kc) as panels of k_mr rows: panel p holds, for each k, the k_mr values
// A(i0 + p*k_mr + r, k0 + k); rows past mc are zeros.
template <typename S>
void pack_a(float* dst, const GemmArgs<S>& g, int64_t i0, int64_t mc, int64_t k0, int64_t kc) {
  const int64_t panels = round_up(mc, k_mr) / k_mr;
  for (int64_t p = 0; p < panels; ++p) {
    float* panel = dst + p * kc * k_mr;
    for (int r = 0; r < k_mr; ++r) {
      const int64_t i = p * k_mr + r;
      if (i >= mc) {
        for (int64_t k = 0; k < kc; ++k) panel[k * k_mr + r] = 0.0f;
      } else if (g.a_layout == Operand::normal) {
        const S* row = g.a + (i0 + i) * g.lda + k0;
        for (int64_t k = 0; k < kc; ++k) panel[k * k_mr + r] = to_float(row[k]);
      } else {
        const S* col = g.a + k0 * g.lda + (i0 + i);
        for (int64_t k = 0; k < kc; ++k) panel[k * k_mr + r] = to_float(col[k * g.lda]);
      }
    }
  }
}

// Packs B(k0.., j0..) (kc × nc) as panels of k_nr columns: panel q holds, for each k, the k_nr
// values B(k0 + k, j0 + q*k_nr + j); columns past nc are zeros.
template <typename S>
void pack_b(float* dst, const GemmArgs<S>& g, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
  const int64_t panels = round_up(nc, k_nr) / k_nr;
  for (int64_t q = 0; q < panels; ++q) {
    float* panel = dst + q * kc * k_nr;
    const int64_t width = std::min<int64_t>(k_nr, nc - q * k_nr);
    if (g.b_layout == Operand::normal) {
      for (int64_t k = 0; k < kc; ++k) {
        const S* row = g.b + (k0 + k) * g.ldb + j0 + q * k_nr;
        float* out = panel + k * k_nr;
        for (int64_t j = 0; j < width; ++j) out[j] = to_float(row[j]);
        for (int64_t j = width; j < k_nr; ++j) out[j] = 0.0f;
      }
    } else {
      for (int64_t j = 0; j < k_nr; ++j) {
        if (j >= width) {
          for (int64_t k = 0; k < kc; ++k) panel[k * k_nr + j] = 0.0f;
          continue;
        }
        const S* col = g.b + (j0 + q * k_nr + j) * g.ldb + k0;
        for (int64_t k = 0; k < kc; ++k) panel[k * k_nr + j] = to_float(col[k]);
      }
    }
  }
}

// Per-thread packing buffers and the fp32 tile, allocated once per thread at their largest size.
struct Scratch {
  std::vector<float> a = std::vector<float>(static_cast<size_t>(k_mc * k_kc));
  std::vector<float> b = std::vector<float>(static_cast<size_t>(k_kc * k_nc));
  std::vector<float> c = std::vector<float>(static_cast<size_t>(k_mc * k_nc));
};

template <typename S>
void gemm_tile(const GemmArgs<S>& g, int64_t i0, int64_t j0, Scratch& s) {
  const Microkernel microkernel = kernel().fn;
  const int64_t mc = std::min(k_mc, g.M - i0), nc = std::min(k_nc, g.N - j0);
  const int64_t mcp = round_up(mc, k_mr), ncp = round_up(nc, k_nr);
  float* tile = s.c.data();  // (mcp, ncp), row stride ncp
  std::fill(tile, tile + mcp * ncp, 0.0f);
  for (int64_t k0 = 0; k0 < g.K; k0 += k_kc) {
    const int64_t kc = std::min(k_kc, g.K - k0);
    pack_a(s.a.data(), g, i0, mc, k0, kc);
    pack_b(s.b.data(), g, k0, kc, j0, nc);
    // B panel outer, A panels inner: one B panel (kc × 16 floats) stays in L1 across the A panels.
    for (int64_t jr = 0; jr < ncp; jr += k_nr)
      for (int64_t ir = 0; ir < mcp; ir += k_mr)
        microkernel(kc, s.a.data() + ir * kc, s.b.data() + jr * kc, tile + ir * ncp + jr, ncp);
  }
  for (int64_t i = 0; i < mc; ++i) {
    const float* acc = tile + i * ncp;
    S* out = g.c + (i0 + i) * g.ldc + j0;
    if (g.epilogue == Epilogue::accumulate) {
      for (int64_t j = 0; j < nc; ++j) out[j] = from_float<S>(to_float(out[j]) + acc[j]);
    } else if (g.bias) {
      const S* bias = g.bias + j0;
      for (int64_t j = 0; j < nc; ++j) out[j] = from_float<S>(acc[j] + to_float(bias[j]));
    } else {
      for (int64_t j = 0; j < nc; ++j) out[j] = from_float<S>(acc[j]);
    }
  }
}

}  // namespace

template <typename S>
void gemm_cpu(const GemmArgs<S>& g) {
  DS_CHECK(g.M >= 0 && g.N >= 0 && g.K >= 0, "gemm shape ", g.M, "x", g.N, "x", g.K);
  DS_CHECK(g.epilogue == Epilogue::store || g.bias == nullptr, "bias is only added by Epilogue::store");
  if (g.M == 0 || g.N == 0) return;
  const int64_t tiles_m = (g.M + k_mc - 1) / k_mc, tiles_n = (g.N + k_nc - 1) / k_nc;
  parallel_for(tiles_m * tiles_n, 1, [&](int64_t begin, int64_t end) {
    thread_local Scratch scratch;
    for (int64_t t = begin; t < end; ++t) gemm_tile(g, (t / tiles_n) * k_mc, (t % tiles_n) * k_nc, scratch);
  });
}

const char* gemm_cpu_kernel_name() { return kernel().name; }

void gemm_cpu_select_kernel(GemmKernel which) {
  g_kernel = which == GemmKernel::generic ? KernelChoice{gemm_microkernel_generic, "generic"} : choose_kernel();
}

template void gemm_cpu<float>(const GemmArgs<float>&);
template void gemm_cpu<bf16>(const GemmArgs<bf16>&);
template void gemm_cpu<f16>(const GemmArgs<f16>&);

}  // namespace ds::model::detail
