// Private to the matmul (lib/model/cuda/matmul.cu and its tests): what Blas holds — the cuBLASLt
// handle, the workspace, and the cache of routes, one per distinct GEMM request — and the cuBLASLt
// check macro. Host code only (g++ can include it).
//
// A route is how one GEMM request is computed, decided once on its first call and reused for
// every later call with the same key, so the training loop never asks cuBLASLt's heuristic twice:
//   - a cuBLASLt plan (matmul descriptor, the three layouts, the chosen algorithm), with as many of
//     the wanted extras (bias, GELU, GELU') fused into its epilogue as cuBLASLt accepts for the
//     shape; the extras it does not accept run as small kernels of ours around the GEMM;
//   - or, where cuBLASLt offers no algorithm at all (or Impl::use_cublaslt is off, for tests), our
//     own deterministic fallback GEMM kernel (slow; a warning says so once per route).
// Determinism note (cited by matmul.cu): the key holds everything the heuristic looks at (shape,
// dtype, epilogue, the alignment of every pointer), the heuristic is asked once per key and its
// first answer kept, and only algorithms without split-K or with split-K reduced in fp32 in the
// workspace (CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE, a separate ordered pass) are allowed — never
// the in-place scheme that reduces through the output in its storage type. With one workspace
// per handle and one handle per stream, the same inputs give the same bits on every run.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "base/dtype.hpp"
#include "model/cuda/kernels.hpp"

namespace ds::model::cuda::detail {

// Reports a failed cuBLASLt call: the status name and text, the statement, file:line, the device
// and `context` (the op and its shape). CUBLAS_STATUS_ALLOC_FAILED throws ds::ResourceError (a user
// can free memory); every other status is a bug or a dead GPU and aborts, as DS_CUDA_CHECK does.
[[noreturn]] void cublas_failed(cublasStatus_t status, const char* statement, const char* file, int line,
                                const std::string& context);

}  // namespace ds::model::cuda::detail

// DS_CUBLAS_CHECK(stmt, context): context (a std::string expression) is evaluated only on failure.
#define DS_CUBLAS_CHECK(stmt, context)                                                         \
  do {                                                                                         \
    cublasStatus_t ds_cublas_status_ = (stmt);                                                 \
    if (ds_cublas_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]                               \
      ::ds::model::cuda::detail::cublas_failed(ds_cublas_status_, #stmt, __FILE__, __LINE__, (context)); \
  } while (0)

namespace ds::model::cuda::detail {

// The three GEMMs of a linear layer, in cuBLASLt's column-major terms (matmul.cu derives each).
enum class Gemm : uint8_t { forward, backward_dinp, backward_dweight };

// What a request wants fused into the GEMM; the route may do some of it outside (see above).
enum class Extra : uint8_t { none, bias, gelu, bias_gelu, dgelu };

struct RouteKey {
  Gemm gemm = Gemm::forward;
  DType dtype = DType::f32;
  Extra extra = Extra::none;
  int N = 0, C = 0, OC = 0;
  // Alignment in bytes (a power of two, at most 256; 256 for a null pointer) of every pointer the
  // GEMM may touch: the heuristic picks algorithms that need the alignment it is told about.
  // Forward: a = weight, b = inp, d = out, x = gelu_out. Backward dinp: a = weight, b = dout,
  // d = dinp, x = gelu_inp. Backward dweight: a = inp, b = dout, d = dweight.
  uint16_t align_a = 0, align_b = 0, align_d = 0, align_x = 0, align_bias = 0;
  bool operator<(const RouteKey& o) const {
    return std::tie(gemm, dtype, extra, N, C, OC, align_a, align_b, align_d, align_x, align_bias) <
           std::tie(o.gemm, o.dtype, o.extra, o.N, o.C, o.OC, o.align_a, o.align_b, o.align_d, o.align_x, o.align_bias);
  }
};

// One cuBLASLt plan; owns its descriptors.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan();
};

struct Route {
  std::unique_ptr<Plan> plan;  // null: our fallback GEMM kernel
  bool bias_fused = false;     // the plan's epilogue adds the bias
  bool gelu_fused = false;     // the plan's epilogue applies GELU (forward) or GELU' (dinp)
};

}  // namespace ds::model::cuda::detail

namespace ds::model::cuda {

struct Blas::Impl {
  static constexpr size_t k_workspace_bytes = size_t{32} << 20;  // cuBLAS's advice for Hopper

  cudaStream_t stream = nullptr;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;  // k_workspace_bytes of device memory, allocated once
  std::map<detail::RouteKey, detail::Route> routes;
  // Tests turn this off to run our fallback kernels (the GEMM, bias, GELU, GELU') on any shape.
  // Routes already planned are kept: change it only on a fresh Blas.
  bool use_cublaslt = true;
  // Heuristic queries made so far (one per route at most, two or three where a fused epilogue is
  // refused and a plainer one tried): tests pin that repeated calls plan nothing.
  size_t heuristic_queries = 0;

  ~Impl();
};

}  // namespace ds::model::cuda
