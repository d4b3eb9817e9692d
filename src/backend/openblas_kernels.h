#pragma once
// Note [OpenBLAS kernels]: OpenBLAS 0.3.21 (Debian 12) picks its kernels when it is loaded, by CPU
// model. A model it does not know gets its generic SSE3 (Prescott) kernels: on an Intel Xeon of
// family 6, model 207 (5th generation) W3's forward + backward took 213 ms a step instead of 58
// ms with the AVX-512 (SkylakeX) ones. So the kernels are chosen here from what the CPU can do
// (CPUID feature bits), never from its model, and set through OPENBLAS_CORETYPE before the
// library is opened at first use, unless the user set that variable:
//   AVX-512 F/BW/DQ/VL -> SkylakeX; AVX2 + FMA -> Haswell; anything older: OpenBLAS decides.
// AMD Zen 4 is the exception: it runs 512-bit FMAs as two 256-bit halves, and OpenBLAS's AVX2
// (Haswell) kernels measured faster there on the MLP shapes (bench_kernels, batch 64 x 2048 x
// 2048: 63-66 -> 66-84 GFLOP/s; W3 end to end 640-760 -> 845-870 samples/s).
// benchmarks/compare_pytorch.py gives Debian's PyTorch, which uses OpenBLAS too, the same choice.

#include <string>

namespace ddp {

struct CpuFeatures {
  bool amd = false;
  unsigned family = 0;  // CPUID's display family
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512dq = false;
  bool avx512vl = false;
};

CpuFeatures this_cpu();

// The OPENBLAS_CORETYPE for `cpu`; empty: let OpenBLAS detect.
std::string openblas_core_type(const CpuFeatures& cpu);

// What the process uses: OPENBLAS_CORETYPE when the user set it, else openblas_core_type of this
// CPU, else "detected by OpenBLAS". Sets the variable for OpenBLAS when it chose.
std::string choose_openblas_kernels();

}  // namespace ddp
