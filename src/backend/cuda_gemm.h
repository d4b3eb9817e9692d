#pragma once
// The CUDA backend's products on cuBLAS, row-major as the CPU backend's: cuBLAS is column-major,
// and a row-major matrix is its transpose in column-major, so C = op(A) op(B) is computed as
// C^T = op(B)^T op(A)^T.

#include <cublas_v2.h>

#include <cstdint>

#include "backend/backend.h"

namespace ddp::cuda {

// C (m, n) = op(A) op(B), or += with `accumulate`. Plain FP32 unless `precision` asks for bf16
// operands (Note [bf16 products]: fp32 in and out); TF32 is the handle's math mode.
void gemm(cublasHandle_t cublas, MatmulPrecision precision, bool ta, bool tb, int64_t m, int64_t n,
          int64_t k, const float* a, const float* b, float* c, bool accumulate);

// ComputeBackend::batched_matmul as one strided batch.
void batched_matmul(cublasHandle_t cublas, int64_t count, int64_t m, int64_t n, int64_t k,
                    float alpha, const ComputeBackend::MatrixOperand& a,
                    const ComputeBackend::MatrixOperand& b, const ComputeBackend::MatrixResult& c,
                    bool accumulate);

}  // namespace ddp::cuda
