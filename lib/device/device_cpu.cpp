// CpuDevice: device memory is host memory; every copy completes before it returns, so streams and
// events are trivially ordered (their methods have nothing to wait for).
#include <cstdlib>
#include <cstring>
#include <new>

#include "device/device.hpp"
#include "base/error.hpp"
#include "base/format.hpp"

namespace ds::device {
namespace {

class CpuStream final : public Stream {
 public:
  void synchronize() override {}
  void* native() const override { return nullptr; }
};

class CpuEvent final : public Event {
 public:
  void record(Stream&) override {}
  void wait_on(Stream&) override {}
  void synchronize() override {}
};

class CpuDevice final : public Device {
 public:
  DeviceKind kind() const override { return DeviceKind::cpu; }
  std::string name() const override { return "cpu"; }
  int index() const override { return 0; }

  Buffer alloc(size_t bytes, MemoryKind kind) override {
    if (bytes == 0) return Buffer(this, nullptr, 0, kind);
    // 64-byte alignment: a cache line, and what AVX-512 loads like.
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) {
      auto info = host_memory_info();
      throw ResourceError("cannot allocate " + format_bytes(static_cast<int64_t>(bytes)) + " of " + memory_kind_name(kind) + " memory (" +
                          format_bytes(static_cast<int64_t>(info.free_bytes)) + " available of " + format_bytes(static_cast<int64_t>(info.total_bytes)) +
                          "); use a higher ZeRO stage, a smaller micro-batch, or fewer ranks per host");
    }
    count_alloc(bytes, kind);
    return Buffer(this, p, bytes, kind);
  }

  void copy(void* dst, const void* src, size_t bytes, Stream&) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void fill_zero(void* dst, size_t bytes, Stream&) override {
    if (bytes) std::memset(dst, 0, bytes);
  }

  Stream& compute_stream() override { return m_stream; }
  std::unique_ptr<Stream> create_stream() override { return std::make_unique<CpuStream>(); }
  std::unique_ptr<Event> create_event() override { return std::make_unique<CpuEvent>(); }
  MemoryInfo memory_info() override { return host_memory_info(); }

 protected:
  void free(void* data, size_t bytes, MemoryKind kind) override {
    std::free(data);
    count_free(bytes, kind);
  }

 private:
  CpuStream m_stream;
};

}  // namespace

std::unique_ptr<Device> make_cpu_device() { return std::make_unique<CpuDevice>(); }

#ifndef DS_HAVE_CUDA
std::unique_ptr<Device> make_cuda_device(int index) {
  throw ResourceError("cuda:" + std::to_string(index) + " requested, but this build has no CUDA support; rebuild with nvcc on PATH or use --device cpu");
}
int cuda_device_count() { return 0; }
void copy_bytes_anywhere(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
bool is_gpu_pointer(const void*) { return false; }
#endif

}  // namespace ds::device
