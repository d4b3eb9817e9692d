// The CUDA backend's activations, bias sums and softmax (see ComputeBackend for their contracts):
// elementwise grid-stride kernels, and one thread per row or column where a row is short.

#include "backend/cuda_activations.h"

#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"

namespace ddp::cuda {

namespace {

// SELU's constants and the normal distribution's, as activation_grad.h's for the CPU.
constexpr float kSeluScale = 1.0507009873554805f;
constexpr float kSeluAlpha = 1.6732632423543772f;
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
constexpr float kSqrt2OverPi = 2 * kInvSqrt2Pi, kGeluCubic = 0.044715f;  // gelu_tanh's

__device__ float activate(int act, float z) {
  switch (act) {
    case 1:
      return z > 0 ? z : 0;  // relu
    case 2:
      return tanhf(z);  // tanh
    case 3:
      return 1.0f / (1.0f + expf(-z));  // sigmoid
    case 4:
      return z > 0 ? z : expm1f(z);  // elu
    case 5:
      return kSeluScale * (z > 0 ? z : kSeluAlpha * expm1f(z));  // selu
    case 6:
      return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z)));  // softplus
    case 7:
      return z / (1 + fabsf(z));  // softsign
    case 8:
      return 0.5f * z * erfcf(-z * kInvSqrt2);  // gelu
    case 9:
      return z / (1.0f + expf(-z));  // silu
    case 10:
      return fminf(fmaxf(z, 0.0f), 6.0f);  // relu6
    case 11:
      return fminf(fmaxf(z + 3, 0.0f), 6.0f) / 6;  // hard_sigmoid
    case 12:
      return z * (fminf(fmaxf(z + 3, 0.0f), 6.0f) / 6);  // hard_silu
    case 13: {  // mish: tanh(softplus(z)) as activation_grad.h's
      const float e = expf(fminf(z, 20.0f)), n = e * (e + 2);
      return z * (n / (n + 2));
    }
    case 14:  // gelu_tanh: z sigmoid(2u), as activation_grad.h's
      return z / (1.0f + expf(-2 * kSqrt2OverPi * (z + kGeluCubic * z * z * z)));
    default:
      return z;
  }
}

// act'(x) of the activations whose derivative needs their input (codes 4-14).
__device__ float input_slope(int act, float x) {
  switch (act) {
    case 4:
      return x > 0 ? 1.0f : expf(x);
    case 5:
      return x > 0 ? kSeluScale : kSeluScale * kSeluAlpha * expf(x);
    case 6:
      return 1.0f / (1.0f + expf(-x));
    case 7: {
      const float d = 1 + fabsf(x);
      return 1 / (d * d);
    }
    case 8:
      return 0.5f * erfcf(-x * kInvSqrt2) + x * kInvSqrt2Pi * expf(-0.5f * x * x);
    case 9: {
      const float s = 1.0f / (1.0f + expf(-x));
      return s * (1 + x * (1 - s));
    }
    case 10:
      return x > 0 && x < 6 ? 1.0f : 0.0f;
    case 11:
      return x > -3 && x < 3 ? 1.0f / 6 : 0.0f;
    case 12:
      return x < -3 ? 0.0f : x < 3 ? x / 3 + 0.5f : 1.0f;
    case 13: {
      const float e = expf(fminf(x, 20.0f)), n = e * (e + 2), t = n / (n + 2);
      return t + x / (1.0f + expf(-x)) * (1 - t * t);
    }
    case 14: {
      const float s = 1.0f / (1.0f + expf(-2 * kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
      return s + x * s * (1 - s) * 2 * kSqrt2OverPi * (1 + 3 * kGeluCubic * x * x);
    }
    default:
      return 1;
  }
}

__device__ float activation_slope(int act, float y) {
  switch (act) {
    case 1:
      return y > 0 ? 1.0f : 0.0f;
    case 2:
      return 1 - y * y;
    case 3:
      return y * (1 - y);
    default:
      return 1;
  }
}

__global__ void bias_activation_kernel(float* y, const float* b, int64_t rows, int64_t cols,
                                       int act) {
  const size_t n = static_cast<size_t>(rows * cols);
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    y[i] = activate(act, y[i] + b[i % cols]);
}

__global__ void activation_kernel(int act, const float* x, float* y, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    y[i] = activate(act, x[i]);
}

__global__ void leaky_scale_kernel(const float* sign, const float* values, float* out, size_t n,
                                   float slope) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = sign[i] > 0 ? values[i] : slope * values[i];
}

__global__ void scale_shift_kernel(const float* x, float* y, size_t n, float scale, float shift) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    y[i] = x[i] * scale + shift;
}

__global__ void activation_grad_kernel(int act, const float* y, const float* dy, float* dx,
                                       size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    dx[i] = dy[i] * activation_slope(act, y[i]);
}

__global__ void input_activation_grad_kernel(int act, const float* x, const float* dy, float* dx,
                                             size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    dx[i] = dy[i] * input_slope(act, x[i]);
}

// db[c] (+)= sum over rows of dz[r, c]; one thread per column.
__global__ void column_sum_kernel(const float* dz, float* db, int64_t rows, int64_t cols,
                                  bool accumulate) {
  const int64_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float sum = 0;
  for (int64_t r = 0; r < rows; ++r) sum += dz[r * cols + c];
  db[c] = accumulate ? db[c] + sum : sum;
}

// One thread per row: rows are short (classes).
__global__ void softmax_kernel(const float* x, float* y, int64_t rows, int64_t cols) {
  const int64_t r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const float* in = x + r * cols;
  float* out = y + r * cols;
  float max = in[0];
  for (int64_t c = 1; c < cols; ++c) max = fmaxf(max, in[c]);
  float sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += (out[c] = expf(in[c] - max));
  for (int64_t c = 0; c < cols; ++c) out[c] /= sum;
}

__global__ void softmax_grad_kernel(const float* y, const float* dy, float* dx, int64_t rows,
                                    int64_t cols) {
  const int64_t r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float dot = 0;
  for (int64_t c = 0; c < cols; ++c) dot += y[r * cols + c] * dy[r * cols + c];
  for (int64_t c = 0; c < cols; ++c) dx[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - dot);
}

int activation_code(Activation act) {
  switch (act) {
    case Activation::kRelu:
      return 1;
    case Activation::kTanh:
      return 2;
    case Activation::kSigmoid:
      return 3;
    case Activation::kElu:
      return 4;
    case Activation::kSelu:
      return 5;
    case Activation::kSoftplus:
      return 6;
    case Activation::kSoftsign:
      return 7;
    case Activation::kGelu:
      return 8;
    case Activation::kSilu:
      return 9;
    case Activation::kRelu6:
      return 10;
    case Activation::kHardSigmoid:
      return 11;
    case Activation::kHardSilu:
      return 12;
    case Activation::kMish:
      return 13;
    case Activation::kGeluTanh:
      return 14;
    case Activation::kLinear:
      break;
  }
  return 0;
}

}  // namespace

void bias_activation(float* y, const float* b, int64_t rows, int64_t cols, Activation act,
                     cudaStream_t stream) {
  bias_activation_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(y, b, rows, cols,
                                                                           activation_code(act));
  cudaCheck(cudaGetLastError());
}

void activation_forward(Activation act, const float* x, float* y, size_t count,
                        cudaStream_t stream) {
  activation_kernel<<<blocks_for(count), kThreads, 0, stream>>>(activation_code(act), x, y, count);
  cudaCheck(cudaGetLastError());
}

void activation_backward(Activation act, const float* x, const float* y, const float* dy, float* dx,
                         size_t count, cudaStream_t stream) {
  if (derivative_from_output(act))
    activation_grad_kernel<<<blocks_for(count), kThreads, 0, stream>>>(activation_code(act), y, dy,
                                                                       dx, count);
  else
    input_activation_grad_kernel<<<blocks_for(count), kThreads, 0, stream>>>(activation_code(act),
                                                                             x, dy, dx, count);
  cudaCheck(cudaGetLastError());
}

void leaky_scale(const float* sign, const float* values, float* out, size_t count, float slope,
                 cudaStream_t stream) {
  leaky_scale_kernel<<<blocks_for(count), kThreads, 0, stream>>>(sign, values, out, count, slope);
  cudaCheck(cudaGetLastError());
}

void scale_shift(const float* x, float* y, size_t count, float scale, float shift,
                 cudaStream_t stream) {
  scale_shift_kernel<<<blocks_for(count), kThreads, 0, stream>>>(x, y, count, scale, shift);
  cudaCheck(cudaGetLastError());
}

void column_sums(const float* dz, float* db, int64_t rows, int64_t cols, bool accumulate,
                 cudaStream_t stream) {
  column_sum_kernel<<<blocks_for(cols), kThreads, 0, stream>>>(dz, db, rows, cols, accumulate);
  cudaCheck(cudaGetLastError());
}

void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream) {
  softmax_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(x, y, rows, cols);
  cudaCheck(cudaGetLastError());
}

void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols,
                      cudaStream_t stream) {
  softmax_grad_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(y, dy, dx, rows, cols);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
