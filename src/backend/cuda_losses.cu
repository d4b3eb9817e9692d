#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"
#include "backend/cuda_losses.h"

namespace ddp::cuda {
namespace {

// The CPU backend's cpu::sigmoid_cross_entropy, a row per thread.
__global__ void sigmoid_cross_entropy_kernel(const float* logits, const float* targets,
                                             const float* pos_weight, float* dlogits, float scale,
                                             int64_t rows, int64_t cols, double* row_loss,
                                             double* row_correct) {
  const int64_t r = start();
  if (r >= rows) return;
  double loss = 0, correct = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const double z = logits[r * cols + c];
    const double t = targets[r * cols + c];
    const double weight = 1 + ((pos_weight ? pos_weight[c] : 1.0) - 1) * t;
    loss += (1 - t) * z + weight * (fmax(-z, 0.0) + log1p(exp(-fabs(z))));
    if (dlogits)
      dlogits[r * cols + c] = static_cast<float>(scale * ((1 - t) - weight / (1 + exp(z))));
    correct += (z > 0) == (t > 0.5);
  }
  row_loss[r] = loss / static_cast<double>(cols);
  row_correct[r] = correct;
}

}  // namespace

void sigmoid_cross_entropy(const float* logits, const float* targets, const float* pos_weight,
                           float* dlogits, float grad_scale, int64_t rows, int64_t cols,
                           double* row_loss, double* row_correct, cudaStream_t stream) {
  sigmoid_cross_entropy_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(
      logits, targets, pos_weight, dlogits, grad_scale / static_cast<float>(cols), rows, cols,
      row_loss, row_correct);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
