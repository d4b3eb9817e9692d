#pragma once
// The CPU's fp32 GEMM: which kernels take a product (Note [tiled GEMM]). Small products and
// skinny ones (a batch of rows against large weights) go to the register-tiled kernels of
// tiled_gemm.h, the rest to single-threaded OpenBLAS, whose kernels are chosen by what the CPU can
// do (Note [OpenBLAS kernels]); Eigen covers targets without AVX2 or BLAS.

#include <cstdint>
#include <string>

namespace ddp::cpu {

// C (m, n) = op(A) op(B), all row-major; op transposes when asked. A is (m, k) or (k, m), B is
// (k, n) or (n, k). C += instead of = with `accumulate`.
void fp32_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
               const float* b, float* c, bool accumulate = false);

// Whether DDP_GEMM=blas sends skinny products to BLAS, as before the tiled kernels existed (for
// benchmarks/run_kernel_choice.py's comparison).
bool skinny_to_blas();

// Skinny products that the tiled kernels take, unless DDP_GEMM=blas.
bool skinny_and_tiled(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k);

// Which kernels take which products, for the backend's name.
std::string fp32_gemm_description();

}  // namespace ddp::cpu
