// The linear layer on the GPU through cuBLASLt (kernels.hpp; CPU twin: model/ops_matmul.hpp).
//
// Row-major to column-major: cuBLASLt is column-major, and a row-major (R,K) matrix is the same
// memory as a column-major (K,R) one. So every product below is the transpose of the row-major
// one, with m, n, k and the operations read off that way:
//   forward   out (N,OC) = inp · Wᵀ      ⇔  outᵀ (OC,N)  = op_T(W as (C,OC)) · inpᵀ (C,N)      m=OC n=N  k=C
//   dinp      dinp (N,C) += dout · W     ⇔  dinpᵀ (C,N)  = W as (C,OC) · doutᵀ (OC,N)          m=C  n=N  k=OC
//   dweight   dW (OC,C) += doutᵀ · inp   ⇔  dWᵀ (C,OC)   = inpᵀ (C,N) · op_T(doutᵀ as (OC,N))  m=C  n=OC k=N
// The bias (OC) runs along the rows of outᵀ, which is what CUBLASLT_EPILOGUE_BIAS broadcasts.
//
// Arithmetic: CUBLAS_COMPUTE_32F with fp32 alpha/beta for every S. For fp32 storage that type
// guarantees at least fp32 precision (TF32 needs CUBLAS_COMPUTE_32F_FAST_TF32, never asked for);
// for bf16/fp16 the products accumulate in fp32 and round once to S when stored. Accumulation
// (+=) is beta = 1 with C == D: old value + fp32 sum, rounded once, as the CPU twin does.
//
// Fused GELU (forward): CUBLASLT_EPILOGUE_GELU_AUX[_BIAS] writes D = gelu(x) and the aux matrix =
// x, the pre-activation; so D is gelu_out and aux is out (aux leading dimension OC). cuBLASLt's
// GELU is the tanh form of model/ops_gelu.hpp. gelu_out is computed from the fp32 pre-activation
// before it is rounded to S, so for 16-bit S it can differ from gelu_forward(out) in the last bit.
// Fused GELU' (backward): CUBLASLT_EPILOGUE_DGELU with aux = gelu_inp writes
// dinp = (dout · W) ⊙ gelu'(gelu_inp), beta = 0. cuBLASLt wants the aux leading dimension a multiple
// of 8; other shapes (and anything else cuBLASLt refuses) take the unfused route: the GEMM, then
// our element-wise kernel. See matmul_blas.hpp for routes and its determinism note.
//
// dbias: our own two-pass column sum, deterministic by construction: pass 1 gives each block a
// fixed tile of k_dbias_cols columns × k_dbias_rows rows and sums its rows in a fixed order into
// one fp32 partial per column (scratch, one row of partials per row block); pass 2 sums each
// column's partials in row-block order in fp32 and adds the total to dbias once, rounding once.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/error.hpp"
#include "base/log.hpp"
#include "device/cuda_check.hpp"
#include "model/cuda/kernels.hpp"
#include "model/cuda/matmul_blas.hpp"

namespace ds::model::cuda {
namespace detail {

void cublas_failed(cublasStatus_t status, const char* statement, const char* file, int line,
                   const std::string& context) {
  int device = -1;
  cudaGetDevice(&device);
  const std::string message = std::string("cuBLASLt error ") + cublasLtGetStatusName(status) + " (" +
                              cublasLtGetStatusString(status) + ") in `" + statement + "` at " + file + ":" +
                              std::to_string(line) + " for " + context + " on cuda:" + std::to_string(device);
  if (status == CUBLAS_STATUS_ALLOC_FAILED)
    throw ResourceError(message + "; free GPU memory: use a higher ZeRO stage, offload, or a smaller micro-batch");
  std::fprintf(stderr, "internal error: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

Plan::~Plan() {
  // Destroying a descriptor cannot fail for a valid one; a destructor has nowhere to report it.
  if (d) cublasLtMatrixLayoutDestroy(d);
  if (b) cublasLtMatrixLayoutDestroy(b);
  if (a) cublasLtMatrixLayoutDestroy(a);
  if (desc) cublasLtMatmulDescDestroy(desc);
}

}  // namespace detail

Blas::Impl::~Impl() {
  routes.clear();
  if (workspace) cudaFree(workspace);
  if (handle) cublasLtDestroy(handle);
}

Blas::Blas(cudaStream_t stream) : m_impl(std::make_unique<Impl>()) {
  m_impl->stream = stream;
  DS_CUBLAS_CHECK(cublasLtCreate(&m_impl->handle), std::string("creating the cuBLASLt handle"));
  DS_CUDA_CHECK(cudaMalloc(&m_impl->workspace, Impl::k_workspace_bytes));
}

Blas::~Blas() = default;

cudaStream_t Blas::stream() const { return m_impl->stream; }

namespace {

using detail::Extra;
using detail::Gemm;
using detail::Plan;
using detail::Route;
using detail::RouteKey;

// ---- device-side conversions: load to fp32, round once to S (round to nearest even) -----------------
__device__ __forceinline__ float load_f32(float x) { return x; }
__device__ __forceinline__ float load_f32(ds::bf16 x) { return __uint_as_float(static_cast<uint32_t>(x.bits) << 16); }
__device__ __forceinline__ float load_f32(ds::f16 x) { return __half2float(__ushort_as_half(x.bits)); }

template <typename S> __device__ __forceinline__ S store_as(float x);
template <> __device__ __forceinline__ float store_as<float>(float x) { return x; }
template <> __device__ __forceinline__ ds::bf16 store_as<ds::bf16>(float x) {
  ds::bf16 v;
  v.bits = __bfloat16_as_ushort(__float2bfloat16_rn(x));
  return v;
}
template <> __device__ __forceinline__ ds::f16 store_as<ds::f16>(float x) {
  ds::f16 v;
  v.bits = __half_as_ushort(__float2half_rn(x));
  return v;
}

// GELU, tanh form, exactly the formula of model/ops_gelu.cpp.
constexpr float k_sqrt_2_over_pi = 0.7978845608028654f;
constexpr float k_cube = 0.044715f;
__device__ __forceinline__ float gelu_f32(float x) {
  const float u = k_sqrt_2_over_pi * (x + k_cube * x * x * x);
  return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float gelu_grad_f32(float x) {
  const float u = k_sqrt_2_over_pi * (x + k_cube * x * x * x);
  const float th = tanhf(u);
  const float du = k_sqrt_2_over_pi * (1.0f + 3.0f * k_cube * x * x);
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

// ---- element-wise kernels for what a route does not fuse ----------------------------------------------
constexpr int k_elementwise_threads = 256;
constexpr int64_t k_elementwise_max_blocks = int64_t{1} << 20;  // grid-stride beyond this

unsigned elementwise_blocks(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>((n + k_elementwise_threads - 1) / k_elementwise_threads,
                                                 k_elementwise_max_blocks));
}

// out (N,OC) row-major: out[r, o] = bias[o]; the GEMM then accumulates onto it with beta = 1.
template <typename S>
__global__ void bias_broadcast_kernel(S* out, const S* bias, int64_t n, int OC) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    out[i] = bias[i % OC];
}

// gelu_out[i] = gelu(pre[i]).
template <typename S>
__global__ void gelu_kernel(S* gelu_out, const S* pre, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    gelu_out[i] = store_as<S>(gelu_f32(load_f32(pre[i])));
}

// d[i] = d[i] · gelu'(x[i]) (d was just written by the GEMM with beta = 0).
template <typename S>
__global__ void gelu_grad_multiply_kernel(S* d, const S* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    d[i] = store_as<S>(load_f32(d[i]) * gelu_grad_f32(load_f32(x[i])));
}

// ---- the fallback GEMM, column-major like cuBLAS: D (m,n) = op(A) · op(B) + beta · D ---------------
// op(A)(i,p) = trans_a ? A[p + i·lda] : A[i + p·lda]; op(B)(p,j) = trans_b ? B[j + p·ldb] : B[p + j·ldb].
// One thread per element of D, one fp32 sum over p in increasing order: deterministic, and slow;
// used only where cuBLASLt has no algorithm (and by tests). beta is 0 or 1; with 0, D is not read.
constexpr int k_gemm_threads_x = 32, k_gemm_threads_y = 8;
constexpr int k_max_grid_y = 65535;

template <typename S>
__global__ void gemm_fallback_kernel(int m, int n, int k, const S* A, int64_t lda, bool trans_a, const S* B,
                                     int64_t ldb, bool trans_b, S* D, int64_t ldd, float beta) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= m) return;
  for (int j = blockIdx.y * blockDim.y + threadIdx.y; j < n; j += gridDim.y * blockDim.y) {
    float acc = 0.0f;
    for (int p = 0; p < k; ++p) {
      const float a = load_f32(trans_a ? A[p + i * lda] : A[i + p * lda]);
      const float b = load_f32(trans_b ? B[j + p * ldb] : B[p + j * ldb]);
      acc += a * b;
    }
    S& out = D[i + j * ldd];
    if (beta != 0.0f) acc += beta * load_f32(out);
    out = store_as<S>(acc);
  }
}

// ---- dbias: deterministic two-pass column sum (see the top of this file) ------------------------------
constexpr int k_dbias_cols = 32;         // columns per block of pass 1 (one warp across)
constexpr int k_dbias_row_threads = 8;   // threads down the rows of a block
constexpr int k_dbias_rows = 256;        // rows per block of pass 1
constexpr int k_dbias_final_threads = 256;

int dbias_row_blocks(int N) { return (N + k_dbias_rows - 1) / k_dbias_rows; }

// partial[rb, o] = Σ_{r in row block rb} dout[r, o], r ascending per thread, threads combined in
// threadIdx.y order. dout is (N,OC); partial is (row blocks, OC) fp32.
template <typename S>
__global__ void dbias_partial_kernel(float* partial, const S* dout, int N, int OC) {
  __shared__ float sums[k_dbias_row_threads][k_dbias_cols];
  const int o = blockIdx.x * k_dbias_cols + threadIdx.x;
  const int r0 = blockIdx.y * k_dbias_rows;
  const int r1 = min(N, r0 + k_dbias_rows);
  float acc = 0.0f;
  if (o < OC)
    for (int r = r0 + threadIdx.y; r < r1; r += k_dbias_row_threads) acc += load_f32(dout[int64_t{r} * OC + o]);
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && o < OC) {
    float total = 0.0f;
    for (int t = 0; t < k_dbias_row_threads; ++t) total += sums[t][threadIdx.x];
    partial[int64_t{blockIdx.y} * OC + o] = total;
  }
}

// dbias[o] += Σ_rb partial[rb, o], rb ascending, rounded once.
template <typename S>
__global__ void dbias_final_kernel(S* dbias, const float* partial, int row_blocks, int OC) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float total = 0.0f;
  for (int rb = 0; rb < row_blocks; ++rb) total += partial[int64_t{rb} * OC + o];
  dbias[o] = store_as<S>(load_f32(dbias[o]) + total);
}

// ---- planning ---------------------------------------------------------------------------------------------
cudaDataType_t cuda_type_of(DType t) {
  return t == DType::f32 ? CUDA_R_32F : t == DType::bf16 ? CUDA_R_16BF : CUDA_R_16F;
}

uint16_t alignment_of(const void* p) {
  if (!p) return 256;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return static_cast<uint16_t>(std::min<uintptr_t>(a & (~a + 1), 256));
}

const char* gemm_op_name(Gemm g) {
  switch (g) {
    case Gemm::forward: return "matmul_forward";
    case Gemm::backward_dinp: return "matmul_backward (dinp)";
    case Gemm::backward_dweight: return "matmul_backward (dweight)";
  }
  return "matmul";
}

const char* extra_name(Extra e) {
  switch (e) {
    case Extra::none: return "";
    case Extra::bias: return ", bias";
    case Extra::gelu: return ", GELU";
    case Extra::bias_gelu: return ", bias+GELU";
    case Extra::dgelu: return ", GELU'";
  }
  return "";
}

const char* epilogue_name(cublasLtEpilogue_t e) {
  switch (e) {
    case CUBLASLT_EPILOGUE_DEFAULT: return "DEFAULT";
    case CUBLASLT_EPILOGUE_BIAS: return "BIAS";
    case CUBLASLT_EPILOGUE_GELU_AUX: return "GELU_AUX";
    case CUBLASLT_EPILOGUE_GELU_AUX_BIAS: return "GELU_AUX_BIAS";
    case CUBLASLT_EPILOGUE_DGELU: return "DGELU";
    default: return "other";
  }
}

std::string describe(const RouteKey& key) {
  return log::format(gemm_op_name(key.gemm), " (", dtype_name(key.dtype), ", N=", key.N, ", C=", key.C,
                     ", OC=", key.OC, extra_name(key.extra), ")");
}

// The column-major geometry of each GEMM (the table at the top of this file).
struct Geometry {
  cublasOperation_t trans_a, trans_b;
  uint64_t a_rows, a_cols, b_rows, b_cols, d_rows, d_cols;
  int64_t lda, ldb, ldd;
  int m, n, k;
};

Geometry geometry(const RouteKey& key) {
  const uint64_t N = key.N, C = key.C, OC = key.OC;
  switch (key.gemm) {
    case Gemm::forward:  // A = weight (C,OC) ld C, op T; B = inp (C,N) ld C; D = out (OC,N) ld OC
      return {CUBLAS_OP_T, CUBLAS_OP_N, C, OC, C, N, OC, N, key.C, key.C, key.OC, key.OC, key.N, key.C};
    case Gemm::backward_dinp:  // A = weight (C,OC) ld C; B = dout (OC,N) ld OC; D = dinp (C,N) ld C
      return {CUBLAS_OP_N, CUBLAS_OP_N, C, OC, OC, N, C, N, key.C, key.OC, key.C, key.C, key.N, key.OC};
    case Gemm::backward_dweight:  // A = inp (C,N) ld C; B = dout (OC,N) ld OC, op T; D = dweight (C,OC) ld C
      return {CUBLAS_OP_N, CUBLAS_OP_T, C, N, OC, N, C, OC, key.C, key.OC, key.C, key.C, key.OC, key.N};
  }
  return {};
}

// The pointers one call passes: what the heuristic is shown (for alignment) and what runs.
struct Operands {
  const void* a = nullptr;
  const void* b = nullptr;
  void* d = nullptr;
  const void* bias = nullptr;  // only read with a *_BIAS epilogue
  const void* aux = nullptr;   // GELU_AUX*: the pre-activation output; DGELU: the pre-activation input
};

// A cuBLASLt plan for `key` with `epilogue`, or null when cuBLASLt offers no algorithm for it.
std::unique_ptr<Plan> try_plan(Blas::Impl& impl, const RouteKey& key, cublasLtEpilogue_t epilogue,
                               const Operands& ops) {
  const Geometry g = geometry(key);
  const auto context = [&] { return describe(key) + " with epilogue " + epilogue_name(epilogue); };
  auto plan = std::make_unique<Plan>();
  plan->epilogue = epilogue;
  DS_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), context());
  const auto set_desc = [&](cublasLtMatmulDescAttributes_t attr, const void* value, size_t size) {
    DS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, attr, value, size), context());
  };
  const int32_t trans_a = g.trans_a, trans_b = g.trans_b;
  const uint32_t epi = epilogue;
  set_desc(CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a);
  set_desc(CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b);
  set_desc(CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  // The heuristic reads the bias and aux pointers' values for their alignment: set the real ones
  // (each call sets its own again; the key guarantees the same alignment).
  if (epilogue == CUBLASLT_EPILOGUE_BIAS || epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS)
    set_desc(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ops.bias, sizeof ops.bias);
  if (epilogue == CUBLASLT_EPILOGUE_GELU_AUX || epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS ||
      epilogue == CUBLASLT_EPILOGUE_DGELU) {
    const int64_t aux_ld = g.ldd;  // the aux matrix has D's shape and layout
    set_desc(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &ops.aux, sizeof ops.aux);
    set_desc(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld);
  }
  const cudaDataType_t type = cuda_type_of(key.dtype);
  DS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, type, g.a_rows, g.a_cols, g.lda), context());
  DS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, type, g.b_rows, g.b_cols, g.ldb), context());
  DS_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, type, g.d_rows, g.d_cols, g.ldd), context());

  cublasLtMatmulPreference_t pref = nullptr;
  DS_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref), context());
  const auto set_pref = [&](cublasLtMatmulPreferenceAttributes_t attr, const void* value, size_t size) {
    DS_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, value, size), context());
  };
  const uint64_t workspace = Blas::Impl::k_workspace_bytes;
  // Determinism note in matmul_blas.hpp: no split-K, or split-K reduced in fp32 in a separate pass.
  const uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  const uint32_t align_a = alignment_of(ops.a), align_b = alignment_of(ops.b), align_d = alignment_of(ops.d);
  set_pref(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace);
  set_pref(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction, sizeof reduction);
  set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof align_a);
  set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof align_b);
  set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof align_d);
  set_pref(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof align_d);

  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(impl.handle, plan->desc, plan->a, plan->b, plan->d,
                                                               plan->d, pref, 1, &result, &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  ++impl.heuristic_queries;
  // NOT_SUPPORTED (or INVALID_VALUE, which some cuBLASLt versions answer for degenerate shapes such
  // as a dimension of 1 with an epilogue) means "not this way": the caller tries a plainer route.
  if (status != CUBLAS_STATUS_SUCCESS || returned == 0) {
    log::debug(context(), ": cuBLASLt offers no algorithm (", cublasLtGetStatusName(status), ", ", returned,
               " results); trying a plainer route");
    return nullptr;
  }
  plan->algo = result.algo;
  return plan;
}

// Decides the route for `key` (once: the caller caches it). Forward: GELU and bias fused if
// cuBLASLt takes them, else bias fused, else a plain GEMM, else our fallback. dinp with GELU':
// DGELU fused, else a plain GEMM. The aux leading dimension must be a multiple of 8 (cuBLASLt's
// rule for the GELU epilogues), so other shapes do not ask.
Route build_route(Blas::Impl& impl, const RouteKey& key, const Operands& fused, const Operands& plain) {
  Route route;
  if (impl.use_cublaslt) {
    const Geometry g = geometry(key);
    const bool aux_ok = g.ldd % 8 == 0;
    const bool want_bias = key.extra == Extra::bias || key.extra == Extra::bias_gelu;
    const bool want_gelu = key.extra == Extra::gelu || key.extra == Extra::bias_gelu;
    if (want_gelu && aux_ok) {
      route.plan = try_plan(impl, key, want_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX, fused);
      route.bias_fused = want_bias, route.gelu_fused = true;
    } else if (key.extra == Extra::dgelu && aux_ok) {
      route.plan = try_plan(impl, key, CUBLASLT_EPILOGUE_DGELU, fused);
      route.gelu_fused = true;
    }
    if (!route.plan && want_bias) {
      route.plan = try_plan(impl, key, CUBLASLT_EPILOGUE_BIAS, plain);
      route.bias_fused = true, route.gelu_fused = false;
    }
    if (!route.plan) {
      route.plan = try_plan(impl, key, CUBLASLT_EPILOGUE_DEFAULT, plain);
      route.bias_fused = false, route.gelu_fused = false;
    }
    if (!route.plan)
      log::warn(describe(key), ": cuBLASLt offers no algorithm for this shape; using the fallback GEMM kernel, ",
                "which is correct but slow");
  }
  if (!route.plan) route.bias_fused = false, route.gelu_fused = false;
  return route;
}

const Route& find_route(Blas::Impl& impl, const RouteKey& key, const Operands& fused, const Operands& plain) {
  auto it = impl.routes.find(key);
  if (it == impl.routes.end()) it = impl.routes.emplace(key, build_route(impl, key, fused, plain)).first;
  return it->second;
}

// Queues D = op(A)·op(B) [+ epilogue] + beta·D on the stream, by the route's plan or our fallback.
template <typename S>
void run_gemm(Blas::Impl& impl, const RouteKey& key, const Route& route, const Operands& ops, float beta) {
  const Geometry g = geometry(key);
  if (route.plan) {
    Plan& plan = *route.plan;
    const auto context = [&] { return describe(key) + " with epilogue " + epilogue_name(plan.epilogue); };
    if (plan.epilogue == CUBLASLT_EPILOGUE_BIAS || plan.epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS)
      DS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ops.bias,
                                                     sizeof ops.bias), context());
    if (plan.epilogue == CUBLASLT_EPILOGUE_GELU_AUX || plan.epilogue == CUBLASLT_EPILOGUE_GELU_AUX_BIAS ||
        plan.epilogue == CUBLASLT_EPILOGUE_DGELU)
      DS_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &ops.aux,
                                                     sizeof ops.aux), context());
    const float alpha = 1.0f;
    DS_CUBLAS_CHECK(cublasLtMatmul(impl.handle, plan.desc, &alpha, ops.a, plan.a, ops.b, plan.b, &beta, ops.d, plan.d,
                                   ops.d, plan.d, &plan.algo, impl.workspace, Blas::Impl::k_workspace_bytes,
                                   impl.stream),
                    context());
    return;
  }
  const dim3 block(k_gemm_threads_x, k_gemm_threads_y);
  const dim3 grid(static_cast<unsigned>((g.m + k_gemm_threads_x - 1) / k_gemm_threads_x),
                  static_cast<unsigned>(std::min((g.n + k_gemm_threads_y - 1) / k_gemm_threads_y, k_max_grid_y)));
  gemm_fallback_kernel<S><<<grid, block, 0, impl.stream>>>(
      g.m, g.n, g.k, static_cast<const S*>(ops.a), g.lda, g.trans_a == CUBLAS_OP_T, static_cast<const S*>(ops.b),
      g.ldb, g.trans_b == CUBLAS_OP_T, static_cast<S*>(ops.d), g.ldd, beta);
  DS_CUDA_LAUNCH_CHECK();
}

// ---- argument checks: every user mistake names the op, the argument and the value --------------------
void check_shape(const char* op, int N, int C, int OC) {
  if (N < 1 || C < 1 || OC < 1)
    throw UsageError(log::format(op, ": shape N=", N, ", C=", C, ", OC=", OC,
                                 " is not a matmul shape; every dimension must be at least 1"));
}

void require(const void* p, const char* op, const char* name) {
  if (!p) throw UsageError(log::format(op, ": ", name, " is null; pass a device pointer"));
}

}  // namespace

// ---- the launchers ----------------------------------------------------------------------------------------
template <typename S>
void matmul_forward(Blas& blas, S* out, const S* inp, const S* weight, const S* bias, int N, int C, int OC,
                    S* gelu_out) {
  // out is (N,OC), inp is (N,C), weight is (OC,C), bias is (OC) or null, gelu_out is (N,OC) or null
  constexpr const char* op = "matmul_forward";
  check_shape(op, N, C, OC);
  require(out, op, "out");
  require(inp, op, "inp");
  require(weight, op, "weight");
  if (gelu_out == out)
    throw UsageError("matmul_forward: gelu_out is the same buffer as out; the pre-activation (out) and the "
                     "activation (gelu_out) need two buffers");
  Blas::Impl& impl = blas.impl();
  RouteKey key;
  key.gemm = Gemm::forward, key.dtype = dtype_of<S>(), key.N = N, key.C = C, key.OC = OC;
  key.extra = gelu_out ? (bias ? Extra::bias_gelu : Extra::gelu) : (bias ? Extra::bias : Extra::none);
  key.align_a = alignment_of(weight), key.align_b = alignment_of(inp), key.align_d = alignment_of(out);
  key.align_x = alignment_of(gelu_out), key.align_bias = alignment_of(bias);
  // Fused GELU: D is the activation, aux the pre-activation. Otherwise D is the pre-activation.
  const Operands fused{weight, inp, gelu_out, bias, out};
  const Operands plain{weight, inp, out, bias, nullptr};
  const Route& route = find_route(impl, key, fused, plain);

  if (route.gelu_fused) {
    run_gemm<S>(impl, key, route, fused, 0.0f);
    return;
  }
  float beta = 0.0f;
  if (bias && !route.bias_fused) {  // out = bias, then the GEMM accumulates onto it: one rounding
    const int64_t n = int64_t{N} * OC;
    bias_broadcast_kernel<S><<<elementwise_blocks(n), k_elementwise_threads, 0, impl.stream>>>(out, bias, n, OC);
    DS_CUDA_LAUNCH_CHECK();
    beta = 1.0f;
  }
  run_gemm<S>(impl, key, route, plain, beta);
  if (gelu_out) {
    const int64_t n = int64_t{N} * OC;
    gelu_kernel<S><<<elementwise_blocks(n), k_elementwise_threads, 0, impl.stream>>>(gelu_out, out, n);
    DS_CUDA_LAUNCH_CHECK();
  }
}

size_t matmul_backward_scratch_bytes(int N, int C, int OC) {
  (void)C;
  if (N < 1 || OC < 1) return 0;
  return static_cast<size_t>(dbias_row_blocks(N)) * static_cast<size_t>(OC) * sizeof(float);
}

template <typename S>
void matmul_backward(Blas& blas, S* dinp, S* dweight, S* dbias, const S* dout, const S* inp, const S* weight, int N,
                     int C, int OC, void* scratch, const S* gelu_inp) {
  // dinp is (N,C) or null, dweight is (OC,C), dbias is (OC) or null, dout is (N,OC), inp is (N,C),
  // weight is (OC,C), scratch holds matmul_backward_scratch_bytes(N,C,OC), gelu_inp is (N,C) or null
  constexpr const char* op = "matmul_backward";
  check_shape(op, N, C, OC);
  require(dweight, op, "dweight");
  require(dout, op, "dout");
  require(inp, op, "inp");
  require(weight, op, "weight");
  if (dbias && !scratch)
    throw UsageError("matmul_backward: scratch is null but dbias is wanted; pass a device buffer of "
                     "matmul_backward_scratch_bytes(N, C, OC) bytes");
  if (gelu_inp && !dinp)
    throw UsageError("matmul_backward: gelu_inp is given but dinp is null; the fused GELU backward produces dinp, "
                     "so pass dinp or drop gelu_inp");
  if (gelu_inp && gelu_inp == dinp)
    throw UsageError("matmul_backward: dinp is the same buffer as gelu_inp; the fused GELU backward reads the "
                     "pre-activation while it writes dinp, so they need two buffers");
  if (dbias && dbias_row_blocks(N) > k_max_grid_y)
    throw UsageError(log::format(op, ": N=", N, " rows is more than the bias gradient supports (at most ",
                                 int64_t{k_max_grid_y} * k_dbias_rows, "); split the micro-batch"));
  Blas::Impl& impl = blas.impl();

  {  // dweight (OC,C) += doutᵀ · inp
    RouteKey key;
    key.gemm = Gemm::backward_dweight, key.dtype = dtype_of<S>(), key.N = N, key.C = C, key.OC = OC;
    key.align_a = alignment_of(inp), key.align_b = alignment_of(dout), key.align_d = alignment_of(dweight);
    key.align_x = key.align_bias = 256;
    const Operands ops{inp, dout, dweight, nullptr, nullptr};
    run_gemm<S>(impl, key, find_route(impl, key, ops, ops), ops, 1.0f);
  }
  if (dinp) {  // dinp (N,C) += dout · weight, or = (dout · weight) ⊙ gelu'(gelu_inp)
    RouteKey key;
    key.gemm = Gemm::backward_dinp, key.dtype = dtype_of<S>(), key.N = N, key.C = C, key.OC = OC;
    key.extra = gelu_inp ? Extra::dgelu : Extra::none;
    key.align_a = alignment_of(weight), key.align_b = alignment_of(dout), key.align_d = alignment_of(dinp);
    key.align_x = alignment_of(gelu_inp), key.align_bias = 256;
    const Operands ops{weight, dout, dinp, nullptr, gelu_inp};
    const Route& route = find_route(impl, key, ops, ops);
    run_gemm<S>(impl, key, route, ops, gelu_inp ? 0.0f : 1.0f);
    if (gelu_inp && !route.gelu_fused) {
      const int64_t n = int64_t{N} * C;
      gelu_grad_multiply_kernel<S><<<elementwise_blocks(n), k_elementwise_threads, 0, impl.stream>>>(dinp, gelu_inp, n);
      DS_CUDA_LAUNCH_CHECK();
    }
  }
  if (dbias) {  // dbias (OC) += Σ_rows dout, deterministic two passes through scratch
    float* partial = static_cast<float*>(scratch);
    const int row_blocks = dbias_row_blocks(N);
    const dim3 grid(static_cast<unsigned>((OC + k_dbias_cols - 1) / k_dbias_cols), static_cast<unsigned>(row_blocks));
    dbias_partial_kernel<S><<<grid, dim3(k_dbias_cols, k_dbias_row_threads), 0, impl.stream>>>(partial, dout, N, OC);
    DS_CUDA_LAUNCH_CHECK();
    dbias_final_kernel<S><<<(OC + k_dbias_final_threads - 1) / k_dbias_final_threads, k_dbias_final_threads, 0,
                            impl.stream>>>(dbias, partial, row_blocks, OC);
    DS_CUDA_LAUNCH_CHECK();
  }
}

#define DS_INSTANTIATE(S)                                                                                      \
  template void matmul_forward<S>(Blas&, S*, const S*, const S*, const S*, int, int, int, S*);                \
  template void matmul_backward<S>(Blas&, S*, S*, S*, const S*, const S*, const S*, int, int, int, void*, const S*);
DS_INSTANTIATE(float)
DS_INSTANTIATE(ds::bf16)
DS_INSTANTIATE(ds::f16)
#undef DS_INSTANTIATE

}  // namespace ds::model::cuda
