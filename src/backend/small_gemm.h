#pragma once
// Note [small GEMM]: the seed workload's layers are products like 32x10x64, where a general GEMM
// spends more time packing panels and zeroing C than multiplying (perf on W1: Eigen's packing +
// memset ~20% of the step, its 48x4 micro-kernel half-empty for 32 rows). This kernel packs
// nothing: C rows are built in registers from broadcast A elements and contiguous B rows, so for
// operands that fit in L1 it runs at FMA throughput. Large products stay with BLAS.

#include <cstdint>

namespace ddp {

// True when the kernel was compiled (AVX-512F target); otherwise callers use their general GEMM.
bool small_gemm_available();

// C(m, n) = A B, or C += A B with `accumulate`. A's element (i, p) is
// a[i * a_row_stride + p * a_col_stride], so A may be stored transposed. B is row-major (k, n), or
// (n, k) holding B^T when `b_transposed`. C is row-major (m, n). Requires small_gemm_available().
void small_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row_stride,
                int64_t a_col_stride, const float* b, bool b_transposed, float* c, bool accumulate);

}  // namespace ddp
