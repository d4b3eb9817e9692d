#include "backend/openblas_kernels.h"

#include <cpuid.h>

#include <cstdlib>

namespace ddp {

CpuFeatures this_cpu() {
  CpuFeatures cpu;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx))
    cpu.amd = ebx == signature_AMD_ebx && ecx == signature_AMD_ecx && edx == signature_AMD_edx;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx))
    cpu.family = ((eax >> 8) & 0xf) + ((eax >> 20) & 0xff);
  // __builtin_cpu_supports also checks that the OS saves the wide registers (XGETBV).
  cpu.avx2 = __builtin_cpu_supports("avx2");
  cpu.fma = __builtin_cpu_supports("fma");
  cpu.avx512f = __builtin_cpu_supports("avx512f");
  cpu.avx512bw = __builtin_cpu_supports("avx512bw");
  cpu.avx512dq = __builtin_cpu_supports("avx512dq");
  cpu.avx512vl = __builtin_cpu_supports("avx512vl");
  return cpu;
}

std::string openblas_core_type(const CpuFeatures& cpu) {
  const bool avx512 = cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl;
  const bool zen4 = cpu.amd && cpu.family == 0x19 && cpu.avx512f;
  if (avx512 && !zen4) return "SkylakeX";
  if (cpu.avx2 && cpu.fma) return "Haswell";
  return "";
}

std::string choose_openblas_kernels() {
  const char* set = std::getenv("OPENBLAS_CORETYPE");
  if (set && *set) return std::string(set) + " (OPENBLAS_CORETYPE)";
  const std::string chosen = openblas_core_type(this_cpu());
  if (chosen.empty()) return "detected by OpenBLAS";
  setenv("OPENBLAS_CORETYPE", chosen.c_str(), 1);
  return chosen;
}

}  // namespace ddp
