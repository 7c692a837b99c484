// The one matrix product behind every CPU matmul of the model (forward, dinp, dweight), with fp32
// accumulation for every storage type. Internal to lib/model: ops call it through ops_matmul.hpp.
//
//   C (M,N) = A (M,K) · B (K,N)  [+ bias (N)]          Epilogue::store
//   C (M,N) += A (M,K) · B (K,N)                        Epilogue::accumulate
//
// Each operand is read through its layout (normal: row-major as written; transposed: the memory
// holds the transpose, row-major), so no caller ever materialises a transposed copy.
//
// Determinism note (cited by ops_matmul.hpp): every C(i,j) is one fp32 sum over k in increasing
// order, started from 0, computed by one thread, whatever the thread count or the cache blocking;
// then bias (store) or the old C value (accumulate) is added and the result rounded once to S.
// Results may differ in the last bits between CPUs with and without AVX2+FMA (the fused
// multiply-add rounds once), never between runs or thread counts on one machine.
#pragma once

#include <cstdint>

namespace ds::model::detail {

enum class Operand : uint8_t { normal, transposed };
enum class Epilogue : uint8_t { store, accumulate };

template <typename S>
struct GemmArgs {
  int64_t M = 0, N = 0, K = 0;
  const S* a = nullptr;  // normal: A(i,k) = a[i*lda + k]; transposed: A(i,k) = a[k*lda + i]
  int64_t lda = 0;
  Operand a_layout = Operand::normal;
  const S* b = nullptr;  // normal: B(k,j) = b[k*ldb + j]; transposed: B(k,j) = b[j*ldb + k]
  int64_t ldb = 0;
  Operand b_layout = Operand::normal;
  S* c = nullptr;        // C(i,j) = c[i*ldc + j]
  int64_t ldc = 0;
  const S* bias = nullptr;  // (N), Epilogue::store only; may be null
  Epilogue epilogue = Epilogue::store;
};

// Threads over output tiles with ds::parallel_for; returns when C is complete.
template <typename S>
void gemm_cpu(const GemmArgs<S>& args);

// Which microkernel gemm_cpu uses on this CPU: "avx2+fma" or "generic" (for logs and benchmarks).
const char* gemm_cpu_kernel_name();

// For tests: run the portable microkernel even where AVX2+FMA is available, so both are checked on
// one machine. Call between products, from the thread that runs them.
enum class GemmKernel : uint8_t { best_available, generic };
void gemm_cpu_select_kernel(GemmKernel kernel);

// The register-tile size shared by the microkernels and the packing (gemm_cpu.cpp).
inline constexpr int k_gemm_mr = 6;   // rows of C per microkernel call
inline constexpr int k_gemm_nr = 16;  // columns of C per microkernel call

// c (k_gemm_mr × k_gemm_nr, row stride ldc) += Σ_k a[k*mr + r] · b[k*nr + j], k = 0..kc-1 in order,
// each element one FMA chain starting from its current value. a and b are packed panels.
void gemm_microkernel_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc);

}  // namespace ds::model::detail
