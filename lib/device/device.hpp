// The Device interface: where tensors live and how bytes move (DESIGN.md §3 "device").
// CpuDevice (device_cpu.cpp) is the CPU slice: "device" memory is ordinary host memory and copies
// are synchronous memcpy, so every stream is trivially ordered. CudaDevice (device_cuda.cu, built
// when nvcc is found) puts device memory on the GPU, pinned host memory in page-locked RAM, and
// copies on CUDA streams. The engine is written once against this interface.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace ds::device {

enum class DeviceKind { cpu, cuda };
enum class MemoryKind {
  device,        // the device's own memory (host RAM for CpuDevice)
  pinned_host,   // page-locked host memory: DMA-able, async copies (offload buffers)
  host,          // pageable host memory
};
const char* memory_kind_name(MemoryKind kind);

class Device;

// Owns one allocation; frees it in the destructor. Move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Device* device, void* data, size_t bytes, MemoryKind kind) : m_device(device), m_data(data), m_bytes(bytes), m_kind(kind) {}
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { reset(); }

  void* data() const { return m_data; }
  template <typename T> T* as() const { return static_cast<T*>(m_data); }
  size_t bytes() const { return m_bytes; }
  MemoryKind kind() const { return m_kind; }
  explicit operator bool() const { return m_data != nullptr; }
  void reset();

 private:
  Device* m_device = nullptr;
  void* m_data = nullptr;
  size_t m_bytes = 0;
  MemoryKind m_kind = MemoryKind::host;
};

// An ordered queue of device work (a CUDA stream; trivially synchronous on CPU).
class Stream {
 public:
  virtual ~Stream() = default;
  virtual void synchronize() = 0;         // blocks until all work queued so far is done
  virtual void* native() const = 0;       // cudaStream_t, or nullptr on CPU
};

// A point in a stream that other streams can wait for.
class Event {
 public:
  virtual ~Event() = default;
  virtual void record(Stream& stream) = 0;
  virtual void wait_on(Stream& stream) = 0;   // stream waits for this event (no host block)
  virtual void synchronize() = 0;             // host blocks until the event completed
};

struct MemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};

// Bytes currently held and the peak, per memory kind: what the engine reports as "memory" and what
// tests assert ZeRO saves.
struct MemoryCounters {
  size_t current[3] = {0, 0, 0};
  size_t peak[3] = {0, 0, 0};
  size_t current_of(MemoryKind k) const { return current[static_cast<int>(k)]; }
  size_t peak_of(MemoryKind k) const { return peak[static_cast<int>(k)]; }
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceKind kind() const = 0;
  virtual std::string name() const = 0;     // "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"
  virtual int index() const = 0;

  // Allocates `bytes` (contents undefined). Throws ds::ResourceError naming the size, the memory
  // kind, what is free and the fix (smaller micro-batch, higher ZeRO stage, offload) when it fails.
  virtual Buffer alloc(size_t bytes, MemoryKind kind) = 0;
  // Queues a copy between any two kinds of memory on `stream` (CPU: done on return).
  virtual void copy(void* dst, const void* src, size_t bytes, Stream& stream) = 0;
  virtual void fill_zero(void* dst, size_t bytes, Stream& stream) = 0;

  virtual Stream& compute_stream() = 0;                 // the stream the model runs on
  virtual std::unique_ptr<Stream> create_stream() = 0;  // e.g. a communication or copy stream
  virtual std::unique_ptr<Event> create_event() = 0;

  virtual MemoryInfo memory_info() = 0;     // device memory free/total (CPU: MemAvailable/MemTotal)
  const MemoryCounters& counters() const { return m_counters; }
  void reset_peaks();

 protected:
  friend class Buffer;
  virtual void free(void* data, size_t bytes, MemoryKind kind) = 0;
  void count_alloc(size_t bytes, MemoryKind kind);
  void count_free(size_t bytes, MemoryKind kind);
  MemoryCounters m_counters;
};

// The CPU device (always available).
std::unique_ptr<Device> make_cpu_device();
// The CUDA device `index`; throws ds::ResourceError when CUDA or that GPU is not available
// (including builds without CUDA).
std::unique_ptr<Device> make_cuda_device(int index);
// Number of CUDA devices usable by this process (0 without CUDA or without a GPU).
int cuda_device_count();

// Copies bytes between any two of host memory and the memory of this process's GPUs, after all work
// queued on the GPU and until done (a memcpy where no GPU is usable). For the one-rank communicator, whose "collectives" are copies.
void copy_bytes_anywhere(void* dst, const void* src, size_t bytes);
// Whether p points into the memory of one of this process's GPUs (false where none is usable).
bool is_gpu_pointer(const void* p);

// Host memory: MemAvailable and MemTotal from /proc/meminfo, bounded by the cgroup limit.
MemoryInfo host_memory_info();

}  // namespace ds::device
