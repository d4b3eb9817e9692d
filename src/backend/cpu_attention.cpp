#include "backend/cpu_attention.h"

#include <Eigen/Core>
#include <algorithm>

namespace ddp::cpu {

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Strided = Eigen::OuterStride<>;
using OperandMap = Eigen::Map<const RowMatrix, Eigen::Unaligned, Strided>;
using ResultMap = Eigen::Map<RowMatrix, Eigen::Unaligned, Strided>;

// Item i of an operand of `rows` x `cols` as it is used, stored transposed where it says so.
OperandMap item(const ComputeBackend::MatrixOperand& op, int64_t i, int64_t rows, int64_t cols) {
  return {op.data + i * op.item_stride, op.transposed ? cols : rows, op.transposed ? rows : cols,
          Strided(op.row_stride)};
}

template <typename Lhs, typename Rhs>
void product(ResultMap& c, const Lhs& a, const Rhs& b, float alpha, bool accumulate) {
  if (accumulate)
    c.noalias() += alpha * (a * b);
  else
    c.noalias() = alpha * (a * b);
}

}  // namespace

void batched_matmul(int64_t first, int64_t end, int64_t m, int64_t n, int64_t k, float alpha,
                    const ComputeBackend::MatrixOperand& a, const ComputeBackend::MatrixOperand& b,
                    const ComputeBackend::MatrixResult& c, bool accumulate) {
  for (int64_t i = first; i < end; ++i) {
    const OperandMap ai = item(a, i, m, k), bi = item(b, i, k, n);
    ResultMap ci(c.data + i * c.item_stride, m, n, Strided(c.row_stride));
    if (a.transposed && b.transposed)
      product(ci, ai.transpose(), bi.transpose(), alpha, accumulate);
    else if (a.transposed)
      product(ci, ai.transpose(), bi, alpha, accumulate);
    else if (b.transposed)
      product(ci, ai, bi.transpose(), alpha, accumulate);
    else
      product(ci, ai, bi, alpha, accumulate);
  }
}

void mask_keys(float* scores, const float* key_mask, bool causal, int64_t samples, int64_t rows,
               int64_t steps, float value) {
  for (int64_t s = 0; s < samples; ++s) {
    const float* mask = key_mask ? key_mask + s * steps : nullptr;
    for (int64_t r = 0; r < rows; ++r) {
      float* row = scores + (s * rows + r) * steps;
      if (mask)
        for (int64_t j = 0; j < steps; ++j)
          if (mask[j] == 0) row[j] = value;
      if (causal) std::fill(row + r % steps + 1, row + steps, value);
    }
  }
}

}  // namespace ddp::cpu
