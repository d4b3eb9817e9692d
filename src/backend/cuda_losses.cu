#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"
#include "backend/cuda_losses.h"

namespace ddp::cuda {
namespace {

__device__ int64_t row_argmax(const float* row, int64_t cols) {
  int64_t best = 0;
  for (int64_t c = 1; c < cols; ++c)
    if (row[c] > row[best]) best = c;
  return best;
}

// Row r's weight: 1 (multiplying by it changes no bit) when rows are not weighted.
__device__ float weight_of(const float* row_weight, int64_t r) {
  return row_weight ? row_weight[r] : 1.0f;
}

// Per row: loss into row_loss, 1 or 0 into row_correct; gradient when dlogits is not null.
__global__ void softmax_cross_entropy_kernel(const float* logits, const float* targets,
                                             const float* row_weight, bool sparse, float* dlogits,
                                             float grad_scale, int64_t rows, int64_t cols,
                                             double* row_loss, double* row_correct) {
  const int64_t r = start();
  if (r >= rows) return;
  // Ignored (a padding position): a sparse target, or a one-hot row's first, below zero.
  if ((sparse ? targets[r] : targets[r * cols]) < 0) {
    row_loss[r] = 0;
    row_correct[r] = 0;
    if (dlogits)
      for (int64_t c = 0; c < cols; ++c) dlogits[r * cols + c] = 0;
    return;
  }
  const float weight = weight_of(row_weight, r);
  const float scale = grad_scale * weight;
  const float* z = logits + r * cols;
  float max = z[0];
  for (int64_t c = 1; c < cols; ++c) max = fmaxf(max, z[c]);
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += expf(z[c] - max);
  const double log_sum = log(sum) + max;
  const int64_t predicted = row_argmax(z, cols);
  const float inv_sum = static_cast<float>(1 / sum);
  if (sparse) {
    const auto label = static_cast<int64_t>(targets[r]);
    row_loss[r] = weight * (log_sum - z[label]);
    row_correct[r] = predicted == label;
    if (dlogits) {
      for (int64_t c = 0; c < cols; ++c)
        dlogits[r * cols + c] = scale * expf(z[c] - max) * inv_sum - (c == label ? scale : 0.0f);
    }
  } else {
    const float* t = targets + r * cols;
    double loss = 0, target_sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      loss += weight * t[c] * (log_sum - z[c]);
      target_sum += t[c];
    }
    row_loss[r] = loss;
    row_correct[r] = predicted == row_argmax(t, cols);
    if (dlogits) {
      const float scaled_sum = static_cast<float>(target_sum) * inv_sum;
      for (int64_t c = 0; c < cols; ++c)
        dlogits[r * cols + c] = scale * (expf(z[c] - max) * scaled_sum - t[c]);
    }
  }
}

__global__ void mse_kernel(const float* pred, const float* targets, const float* row_weight,
                           float* dpred, float unweighted_scale, int64_t rows, int64_t cols,
                           double* row_loss, double* row_correct) {
  const int64_t r = start();
  if (r >= rows) return;
  const float weight = weight_of(row_weight, r);
  const float scale = unweighted_scale * weight;
  double loss = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const double diff = static_cast<double>(pred[r * cols + c]) - targets[r * cols + c];
    loss += diff * diff;
    if (dpred) dpred[r * cols + c] = scale * (pred[r * cols + c] - targets[r * cols + c]);
  }
  row_loss[r] = weight * (loss / static_cast<double>(cols));
  row_correct[r] = row_argmax(pred + r * cols, cols) == row_argmax(targets + r * cols, cols);
}

// The CPU backend's cpu::sigmoid_cross_entropy, a row per thread.
__global__ void sigmoid_cross_entropy_kernel(const float* logits, const float* targets,
                                             const float* row_weight, const float* pos_weight,
                                             float* dlogits, float unweighted_scale, int64_t rows,
                                             int64_t cols, double* row_loss, double* row_correct) {
  const int64_t r = start();
  if (r >= rows) return;
  const float row_scale = weight_of(row_weight, r);
  const float scale = unweighted_scale * row_scale;
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
  row_loss[r] = row_scale * (loss / static_cast<double>(cols));
  row_correct[r] = correct;
}

constexpr int kPenaltyBlocks = 256;  // partial sums the host adds, in block order

// Each block sums its grid-stride share of the penalty in a fixed tree order.
__global__ void weight_penalty_kernel(const float* w, float* g, size_t n, float l1, float l2,
                                      double* partial) {
  __shared__ double sums[kThreads];
  double sum = 0;
  for (int64_t i = start(); i < static_cast<int64_t>(n); i += stride()) {
    const float x = w[i];
    sum += l1 * fabs(static_cast<double>(x)) + l2 * static_cast<double>(x) * x;
    if (g) g[i] += l1 * static_cast<float>((x > 0) - (x < 0)) + 2 * l2 * x;
  }
  sums[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = sums[0];
}

}  // namespace

double weight_penalty(const float* weights, float* grads, size_t count, float l1, float l2,
                      DeviceDoubles& scratch, cudaStream_t stream) {
  double* partial = scratch.reserve(kPenaltyBlocks);
  weight_penalty_kernel<<<kPenaltyBlocks, kThreads, 0, stream>>>(weights, grads, count, l1, l2,
                                                                 partial);
  cudaCheck(cudaGetLastError());
  double host[kPenaltyBlocks];
  cudaCheck(cudaMemcpyAsync(host, partial, sizeof host, cudaMemcpyDeviceToHost, stream));
  cudaCheck(cudaStreamSynchronize(stream));
  double total = 0;
  for (const double p : host) total += p;
  return total;
}

void softmax_cross_entropy(const float* logits, const float* targets, const float* row_weight,
                           bool sparse, float* dlogits, float grad_scale, int64_t rows,
                           int64_t cols, double* row_loss, double* row_correct,
                           cudaStream_t stream) {
  softmax_cross_entropy_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(
      logits, targets, row_weight, sparse, dlogits, grad_scale, rows, cols, row_loss, row_correct);
  cudaCheck(cudaGetLastError());
}

void mean_squared_error(const float* pred, const float* targets, const float* row_weight,
                        float* dpred, float grad_scale, int64_t rows, int64_t cols,
                        double* row_loss, double* row_correct, cudaStream_t stream) {
  mse_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(pred, targets, row_weight, dpred,
                                                        2 * grad_scale / static_cast<float>(cols),
                                                        rows, cols, row_loss, row_correct);
  cudaCheck(cudaGetLastError());
}

void sigmoid_cross_entropy(const float* logits, const float* targets, const float* row_weight,
                           const float* pos_weight, float* dlogits, float grad_scale, int64_t rows,
                           int64_t cols, double* row_loss, double* row_correct,
                           cudaStream_t stream) {
  sigmoid_cross_entropy_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(
      logits, targets, row_weight, pos_weight, dlogits, grad_scale / static_cast<float>(cols), rows,
      cols, row_loss, row_correct);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
