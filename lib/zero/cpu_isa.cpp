#include "zero/cpu_isa.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

#include "base/error.hpp"

namespace ds::zero {
namespace {

constexpr int k_unset = -1;
std::atomic<int> g_active{k_unset};

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::scalar: return "scalar";
    case CpuIsa::avx2: return "avx2";
    case CpuIsa::avx512: return "avx512";
  }
  return "?";
}

CpuIsa parse_cpu_isa(std::string_view text) {
  if (text == "scalar") return CpuIsa::scalar;
  if (text == "avx2") return CpuIsa::avx2;
  if (text == "avx512") return CpuIsa::avx512;
  throw UsageError("CPU instruction set '" + std::string(text) + "' is not one of scalar, avx2, avx512");
}

bool cpu_supports(CpuIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  switch (isa) {
    case CpuIsa::scalar: return true;
    case CpuIsa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    case CpuIsa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }
  return false;
#else
  return isa == CpuIsa::scalar;
#endif
}

CpuIsa cpu_isa_best() {
  if (cpu_supports(CpuIsa::avx512)) return CpuIsa::avx512;
  if (cpu_supports(CpuIsa::avx2)) return CpuIsa::avx2;
  return CpuIsa::scalar;
}

CpuIsa cpu_isa_from_env_value(std::string_view value) {
  if (value.empty()) return cpu_isa_best();
  CpuIsa wanted;
  try {
    wanted = parse_cpu_isa(value);
  } catch (const UsageError& e) {
    throw UsageError(std::string("DSLAUNCH_CPU_ISA: ") + e.what());
  }
  if (!cpu_supports(wanted))
    throw UsageError("DSLAUNCH_CPU_ISA=" + std::string(value) +
                     " asks for an instruction set this CPU lacks (best available: " + cpu_isa_name(cpu_isa_best()) +
                     "); unset it or choose one the CPU supports");
  return wanted;
}

CpuIsa cpu_isa_active() {
  int v = g_active.load(std::memory_order_relaxed);
  if (v == k_unset) {
    const char* env = std::getenv("DSLAUNCH_CPU_ISA");
    v = static_cast<int>(cpu_isa_from_env_value(env ? env : ""));
    int expected = k_unset;
    g_active.compare_exchange_strong(expected, v);  // a concurrent set_cpu_isa wins
    v = g_active.load(std::memory_order_relaxed);
  }
  return static_cast<CpuIsa>(v);
}

void set_cpu_isa(CpuIsa isa) {
  if (!cpu_supports(isa))
    throw UsageError(std::string("cannot use the ") + cpu_isa_name(isa) + " kernels: this CPU lacks that instruction set (best available: " +
                     cpu_isa_name(cpu_isa_best()) + ")");
  g_active.store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace ds::zero
