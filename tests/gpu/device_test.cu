// CudaDevice against the CPU: allocations in every memory kind, copies between them on a side
// stream ordered by an event, zero fills, and the memory counters.
#include <cstdio>
#include <cstring>
#include <vector>

#include "gpu/skip.hpp"
#include "device/device.hpp"

using namespace ds::device;

static int failures = 0;
#define EXPECT(cond)                                                        \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
      ++failures;                                                           \
    }                                                                       \
  } while (0)

int main() {
  ds::test::require_gpu_or_skip("gpu device_test");
  auto dev = make_cuda_device(0);
  std::printf("device: %s\n", dev->name().c_str());
  const size_t n = 1 << 20;
  std::vector<float> src(n), back(n, -1.0f);
  for (size_t i = 0; i < n; ++i) src[i] = static_cast<float>(i % 977) - 488.0f;

  Buffer pinned = dev->alloc(n * 4, MemoryKind::pinned_host);
  Buffer d = dev->alloc(n * 4, MemoryKind::device);
  Buffer d2 = dev->alloc(n * 4, MemoryKind::device);
  EXPECT(dev->counters().current_of(MemoryKind::device) == 2 * n * 4);
  std::memcpy(pinned.data(), src.data(), n * 4);

  auto side = dev->create_stream();
  auto ev = dev->create_event();
  dev->copy(d.data(), pinned.data(), n * 4, *side);          // H2D on the side stream
  ev->record(*side);
  ev->wait_on(dev->compute_stream());                         // compute stream waits for it
  dev->copy(d2.data(), d.data(), n * 4, dev->compute_stream());
  dev->copy(back.data(), d2.data(), n * 4, dev->compute_stream());
  dev->compute_stream().synchronize();
  EXPECT(std::memcmp(back.data(), src.data(), n * 4) == 0);

  dev->fill_zero(d2.data(), n * 4, dev->compute_stream());
  dev->copy(back.data(), d2.data(), n * 4, dev->compute_stream());
  dev->compute_stream().synchronize();
  bool zeros = true;
  for (float v : back) zeros &= v == 0.0f;
  EXPECT(zeros);

  d2.reset();
  EXPECT(dev->counters().current_of(MemoryKind::device) == n * 4);
  EXPECT(dev->counters().peak_of(MemoryKind::device) == 2 * n * 4);
  auto info = dev->memory_info();
  EXPECT(info.total_bytes > info.free_bytes && info.free_bytes > 0);

  std::printf(failures ? "FAILED: %d check(s)\n" : "PASSED\n", failures);
  return failures ? 1 : 0;
}
