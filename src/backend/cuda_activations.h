#pragma once
// The CUDA backend's activations, bias sums and softmax (see ComputeBackend for their contracts),
// queued on `stream`.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace ddp::cuda {

// y = act(y + b), b broadcast over the rows of y (rows, cols).
void bias_activation(float* y, const float* b, int64_t rows, int64_t cols, Activation act,
                     cudaStream_t stream);
void activation_forward(Activation act, const float* x, float* y, size_t count,
                        cudaStream_t stream);
// dx = dy * act'(x), from the activation's output y where derivative_from_output(act) (x may then
// be null), else from its input x; dx may be dy.
void activation_backward(Activation act, const float* x, const float* y, const float* dy, float* dx,
                         size_t count, cudaStream_t stream);
// out = values where sign > 0, slope * values elsewhere; out may be values.
void leaky_scale(const float* sign, const float* values, float* out, size_t count, float slope,
                 cudaStream_t stream);
// y = x * scale + shift; y may be x.
void scale_shift(const float* x, float* y, size_t count, float scale, float shift,
                 cudaStream_t stream);
// db[c] (+)= sum over rows of dz[r, c].
void column_sums(const float* dz, float* db, int64_t rows, int64_t cols, bool accumulate,
                 cudaStream_t stream);
void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols, cudaStream_t stream);
void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols,
                      cudaStream_t stream);

}  // namespace ddp::cuda
