#include "zero/cuda/kernel_support.cuh"

#include <algorithm>
#include <map>
#include <mutex>
#include <utility>

namespace ds::zero::cuda::detail {

int grid_for(const void* kernel, int threads, int64_t work_tiles, size_t dynamic_smem) {
  if (work_tiles <= 1) return 1;
  int device = 0;
  DS_CUDA_CHECK(cudaGetDevice(&device));
  static std::mutex mutex;
  static std::map<std::pair<int, const void*>, int> resident;  // (device, kernel) -> blocks on the whole device
  int blocks = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = resident.find({device, kernel});
    if (it == resident.end()) {
      int per_sm = 0, sms = 0;
      DS_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, dynamic_smem));
      DS_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
      it = resident.emplace(std::make_pair(device, kernel), std::max(1, per_sm) * std::max(1, sms)).first;
    }
    blocks = it->second;
  }
  return static_cast<int>(std::min<int64_t>(work_tiles, blocks));
}

}  // namespace ds::zero::cuda::detail
