// Which vector instruction set the CPU kernels (Adam, for now) use. Chosen once at run time from
// what the CPU supports, so one binary runs on any x86-64 and uses AVX-512 where it exists.
// DSLAUNCH_CPU_ISA=scalar|avx2|avx512 forces a choice (tests and benchmarks compare the paths);
// asking for one the CPU lacks is a UsageError, never a silent fallback.
//
// Every path computes the same IEEE operations in the same order, so results are bitwise equal
// whichever ISA runs (see the note "Same bits on every ISA" in zero/adam_kernels.hpp).
#pragma once

#include <string_view>

namespace ds::zero {

enum class CpuIsa { scalar, avx2, avx512 };

const char* cpu_isa_name(CpuIsa isa);           // "scalar", "avx2", "avx512"
CpuIsa parse_cpu_isa(std::string_view text);    // throws UsageError naming the accepted values

// Whether this CPU (and OS) can run `isa`: avx2 needs AVX2+FMA+F16C; avx512 needs F, BW, VL, DQ.
bool cpu_supports(CpuIsa isa);

// The best ISA this CPU supports.
CpuIsa cpu_isa_best();

// The ISA a DSLAUNCH_CPU_ISA value asks for: an empty value means cpu_isa_best(). Throws
// UsageError naming the variable if the value is unknown or the CPU lacks that ISA.
CpuIsa cpu_isa_from_env_value(std::string_view value);

// The ISA the kernels use now: the last set_cpu_isa(), else DSLAUNCH_CPU_ISA if set (read once;
// throws UsageError if it names an unknown or unsupported ISA), else cpu_isa_best().
CpuIsa cpu_isa_active();

// Forces the kernels onto `isa` (tests, benchmarks). Throws UsageError if the CPU lacks it.
// Not synchronised with running kernels: call it between steps.
void set_cpu_isa(CpuIsa isa);

}  // namespace ds::zero
