// CudaDevice: device memory through cudaMalloc, pinned host memory through cudaHostAlloc, copies
// and fills queued on CUDA streams. Built only when nvcc is found (DS_HAVE_CUDA).
#include <cuda_runtime.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "device/cuda_check.hpp"
#include "device/device.hpp"
#include "base/error.hpp"

namespace ds::device {
namespace detail {

[[noreturn]] void cuda_failed(cudaError_t err, const char* statement, const char* file, int line) {
  int device = -1;
  cudaGetDevice(&device);
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  const char* rank = std::getenv("RANK");
  std::string message = std::string("CUDA error ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ") in `" +
                        statement + "` at " + file + ":" + std::to_string(line) + " on cuda:" + std::to_string(device) +
                        ", host " + host + ", rank " + (rank ? rank : "-");
  if (err == cudaErrorMemoryAllocation) throw ResourceError(message + "; free GPU memory: use a higher ZeRO stage, offload, or a smaller micro-batch");
  std::fprintf(stderr, "internal error: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace detail

namespace {

class CudaStream final : public Stream {
 public:
  explicit CudaStream(bool owned) : m_owned(owned) {
    if (owned) DS_CUDA_CHECK(cudaStreamCreateWithFlags(&m_stream, cudaStreamNonBlocking));
  }
  ~CudaStream() override {
    if (m_owned && m_stream) cudaStreamDestroy(m_stream);
  }
  void synchronize() override { DS_CUDA_CHECK(cudaStreamSynchronize(m_stream)); }
  void* native() const override { return m_stream; }

 private:
  cudaStream_t m_stream = nullptr;
  bool m_owned;
};

class CudaEvent final : public Event {
 public:
  CudaEvent() { DS_CUDA_CHECK(cudaEventCreateWithFlags(&m_event, cudaEventDisableTiming)); }
  ~CudaEvent() override { cudaEventDestroy(m_event); }
  void record(Stream& stream) override { DS_CUDA_CHECK(cudaEventRecord(m_event, static_cast<cudaStream_t>(stream.native()))); }
  void wait_on(Stream& stream) override {
    DS_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream.native()), m_event, 0));
  }
  void synchronize() override { DS_CUDA_CHECK(cudaEventSynchronize(m_event)); }

 private:
  cudaEvent_t m_event = nullptr;
};

class CudaDevice final : public Device {
 public:
  explicit CudaDevice(int index) : m_index(index) {
    DS_CUDA_CHECK(cudaSetDevice(index));
    cudaDeviceProp prop{};
    DS_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
    m_name = "cuda:" + std::to_string(index) + " (" + prop.name + ")";
    m_compute = std::make_unique<CudaStream>(true);
    // Device memory comes from the device's stream-ordered pool: a freed block returns to the pool
    // in the compute stream's order (never while a queued kernel may still read it) and is reused
    // without cudaMalloc/cudaFree (which synchronise the device) in the training loop. The pool
    // keeps what it has (release threshold: everything).
    DS_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&m_pool, index));
    uint64_t keep = UINT64_MAX;
    DS_CUDA_CHECK(cudaMemPoolSetAttribute(m_pool, cudaMemPoolAttrReleaseThreshold, &keep));
  }

  DeviceKind kind() const override { return DeviceKind::cuda; }
  std::string name() const override { return m_name; }
  int index() const override { return m_index; }

  Buffer alloc(size_t bytes, MemoryKind kind) override {
    if (bytes == 0) return Buffer(this, nullptr, 0, kind);
    void* p = nullptr;
    cudaError_t err = cudaSuccess;
    switch (kind) {
      case MemoryKind::device:
        err = cudaMallocFromPoolAsync(&p, bytes, m_pool, static_cast<cudaStream_t>(m_compute->native()));
        break;
      case MemoryKind::pinned_host: err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable); break;
      case MemoryKind::host: p = std::aligned_alloc(64, (bytes + 63) / 64 * 64); break;
    }
    if (err != cudaSuccess || !p) {
      cudaGetLastError();  // clear the sticky-free error state of a failed allocation
      size_t free_b = 0, total_b = 0;
      if (kind == MemoryKind::device) {
        cudaMemGetInfo(&free_b, &total_b);
        size_t cached = 0, used = 0;
        cudaMemPoolGetAttribute(m_pool, cudaMemPoolAttrReservedMemCurrent, &cached);
        cudaMemPoolGetAttribute(m_pool, cudaMemPoolAttrUsedMemCurrent, &used);
        free_b += cached - used;  // the pool's free blocks are free to us
      }
      else {
        auto info = host_memory_info();
        free_b = info.free_bytes;
        total_b = info.total_bytes;
      }
      char msg[512];
      std::snprintf(msg, sizeof msg,
                    "cannot allocate %.2f GiB of %s memory on %s (%.2f GiB free of %.2f GiB); use a higher ZeRO stage, "
                    "CPU offload, or a smaller micro-batch",
                    bytes / 1073741824.0, memory_kind_name(kind), m_name.c_str(), free_b / 1073741824.0, total_b / 1073741824.0);
      throw ResourceError(msg);
    }
    count_alloc(bytes, kind);
    return Buffer(this, p, bytes, kind);
  }

  void copy(void* dst, const void* src, size_t bytes, Stream& stream) override {
    if (bytes) DS_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream.native())));
  }
  void fill_zero(void* dst, size_t bytes, Stream& stream) override {
    if (bytes) DS_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, static_cast<cudaStream_t>(stream.native())));
  }

  Stream& compute_stream() override { return *m_compute; }
  std::unique_ptr<Stream> create_stream() override { return std::make_unique<CudaStream>(true); }
  std::unique_ptr<Event> create_event() override { return std::make_unique<CudaEvent>(); }

  MemoryInfo memory_info() override {
    MemoryInfo info;
    DS_CUDA_CHECK(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
    return info;
  }

 protected:
  void free(void* data, size_t bytes, MemoryKind kind) override {
    switch (kind) {
      case MemoryKind::device: cudaFreeAsync(data, static_cast<cudaStream_t>(m_compute->native())); break;
      case MemoryKind::pinned_host: cudaFreeHost(data); break;
      case MemoryKind::host: std::free(data); break;
    }
    count_free(bytes, kind);
  }

 private:
  int m_index;
  std::string m_name;
  std::unique_ptr<CudaStream> m_compute;
  cudaMemPool_t m_pool = nullptr;
};

}  // namespace

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

void copy_bytes_anywhere(void* dst, const void* src, size_t bytes) {
  static const bool have_gpu = cuda_device_count() > 0;
  if (!have_gpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  // The source may still be written by kernels queued on a non-blocking stream, which a plain
  // cudaMemcpy does not wait for: wait for all of this device's work first.
  DS_CUDA_CHECK(cudaDeviceSynchronize());
  DS_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
}

bool is_gpu_pointer(const void* p) {
  static const bool have_gpu = cuda_device_count() > 0;
  if (!have_gpu || !p) return false;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

std::unique_ptr<Device> make_cuda_device(int index) {
  const int count = cuda_device_count();
  if (index < 0 || index >= count)
    throw ResourceError("cuda:" + std::to_string(index) + " requested but " + std::to_string(count) +
                        " CUDA device(s) are visible (CUDA_VISIBLE_DEVICES=" +
                        (std::getenv("CUDA_VISIBLE_DEVICES") ? std::getenv("CUDA_VISIBLE_DEVICES") : "<unset>") +
                        "); use --device cpu or launch with fewer ranks per node");
  return std::make_unique<CudaDevice>(index);
}

}  // namespace ds::device
