#include "backend/cuda_gemm.h"

#include "backend/cuda_check.h"

namespace ddp::cuda {

void gemm(cublasHandle_t cublas, MatmulPrecision precision, bool ta, bool tb, int64_t m, int64_t n,
          int64_t k, const float* a, const float* b, float* c, bool accumulate) {
  const float one = 1, beta = accumulate ? 1.0f : 0.0f;
  const cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                          op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int lda = static_cast<int>(ta ? m : k), ldb = static_cast<int>(tb ? k : n);
  if (precision == MatmulPrecision::kBf16) {
    cublasCheck(cublasGemmEx(cublas, op_b, op_a, static_cast<int>(n), static_cast<int>(m),
                             static_cast<int>(k), &one, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda,
                             &beta, c, CUDA_R_32F, static_cast<int>(n),
                             CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    return;
  }
  cublasCheck(cublasSgemm(cublas, op_b, op_a, static_cast<int>(n), static_cast<int>(m),
                          static_cast<int>(k), &one, b, ldb, a, lda, &beta, c,
                          static_cast<int>(n)));
}

void batched_matmul(cublasHandle_t cublas, int64_t count, int64_t m, int64_t n, int64_t k,
                    float alpha, const ComputeBackend::MatrixOperand& a,
                    const ComputeBackend::MatrixOperand& b, const ComputeBackend::MatrixResult& c,
                    bool accumulate) {
  if (count == 0) return;
  const float beta = accumulate ? 1.0f : 0.0f;
  cublasCheck(cublasSgemmStridedBatched(
      cublas, b.transposed ? CUBLAS_OP_T : CUBLAS_OP_N, a.transposed ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha, b.data,
      static_cast<int>(b.row_stride), b.item_stride, a.data, static_cast<int>(a.row_stride),
      a.item_stride, &beta, c.data, static_cast<int>(c.row_stride), c.item_stride,
      static_cast<int>(count)));
}

}  // namespace ddp::cuda
