// The one check-macro family for CUDA calls (STYLE.md habit 4): a failure reports the statement,
// file:line, the device, host and rank, and the CUDA error text, then throws ds::ResourceError for
// out-of-memory (a user can fix it) or aborts for everything else (a bug or a dead GPU).
#pragma once

#ifdef DS_HAVE_CUDA
#include <cuda_runtime.h>

namespace ds::device::detail {
[[noreturn]] void cuda_failed(cudaError_t err, const char* statement, const char* file, int line);
}

#define DS_CUDA_CHECK(stmt)                                                             \
  do {                                                                                  \
    cudaError_t ds_cuda_err_ = (stmt);                                                  \
    if (ds_cuda_err_ != cudaSuccess) [[unlikely]]                                       \
      ::ds::device::detail::cuda_failed(ds_cuda_err_, #stmt, __FILE__, __LINE__);      \
  } while (0)

// After every kernel launch: catches bad launch configurations at the launch site.
#define DS_CUDA_LAUNCH_CHECK() DS_CUDA_CHECK(cudaGetLastError())
#endif
