// GPU tests run for real on the device machines and report Skipped elsewhere: each GPU test main
// calls require_gpu_or_skip() first, which exits with k_skip_exit_code when no GPU is visible.
// tests/CMakeLists.txt sets SKIP_RETURN_CODE to the same value, so CTest prints "Skipped".
#pragma once

#include <cstdio>
#include <cstdlib>

#include "device/device.hpp"

namespace ds::test {

inline constexpr int k_skip_exit_code = 77;

inline void require_gpu_or_skip(const char* test_name) {
  if (ds::device::cuda_device_count() == 0) {
    std::printf("SKIPPED %s: no CUDA GPU visible on this machine\n", test_name);
    std::exit(k_skip_exit_code);
  }
}

}  // namespace ds::test
