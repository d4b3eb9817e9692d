#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"
#include "backend/cuda_window_ops.h"
#include "core/counter_hash.h"

namespace ddp::cuda {
namespace {

// Output rows (or columns) whose window covers input row i: [first, last], maybe empty.
__device__ void covering(int64_t i, int64_t pad, int64_t span, int64_t stride, int64_t out,
                         int64_t& first, int64_t& last) {
  const int64_t top = i + pad - span + 1;  // the lowest window start that still covers i
  first = top <= 0 ? 0 : (top + stride - 1) / stride;
  last = min((i + pad) / stride, out - 1);
}

// Input element i (b, ih, iw, c) and the outputs whose windows cover it: rows [oh0, oh1],
// columns [ow0, ow1].
struct Covered {
  int64_t b, ih, iw, c, oh0, oh1, ow0, ow1;
};

__device__ Covered covered(int64_t i, const Window2d& w) {
  Covered p;
  p.c = i % w.channels;
  p.iw = (i / w.channels) % w.width;
  p.ih = (i / (w.channels * w.width)) % w.height;
  p.b = i / (w.height * w.width * w.channels);
  covering(p.ih, w.pad_top, w.span_h(), w.stride_h, w.out_h, p.oh0, p.oh1);
  covering(p.iw, w.pad_left, w.span_w(), w.stride_w, w.out_w, p.ow0, p.ow1);
  return p;
}

// One thread per element of cols (pixel, ki, kj, channel).
__global__ void im2col_kernel(const float* x, float* cols, int64_t n, Window2d w) {
  for (int64_t i = start(); i < n; i += stride()) {
    const int64_t c = i % w.channels;
    const int64_t kj = (i / w.channels) % w.kernel_w;
    const int64_t ki = (i / (w.channels * w.kernel_w)) % w.kernel_h;
    const int64_t pixel = i / w.patch();
    const int64_t ow = pixel % w.out_w, oh = (pixel / w.out_w) % w.out_h;
    const int64_t b = pixel / w.out_pixels();
    const int64_t ih = oh * w.stride_h - w.pad_top + ki * w.dilation_h;
    const int64_t iw = ow * w.stride_w - w.pad_left + kj * w.dilation_w;
    const bool inside = ih >= 0 && ih < w.height && iw >= 0 && iw < w.width;
    cols[i] = inside ? x[((b * w.height + ih) * w.width + iw) * w.channels + c] : 0.0f;
  }
}

// One thread per element of dx: the sum of the cols entries taken from it.
__global__ void col2im_kernel(const float* cols, float* dx, int64_t n, Window2d w) {
  for (int64_t i = start(); i < n; i += stride()) {
    const Covered p = covered(i, w);
    float sum = 0;
    for (int64_t oh = p.oh0; oh <= p.oh1; ++oh)
      for (int64_t ow = p.ow0; ow <= p.ow1; ++ow) {
        // Note [dilated convolution]: between a dilated kernel's taps, no tap
        const int64_t di = p.ih - (oh * w.stride_h - w.pad_top);
        const int64_t dj = p.iw - (ow * w.stride_w - w.pad_left);
        if (di % w.dilation_h != 0 || dj % w.dilation_w != 0) continue;
        const int64_t ki = di / w.dilation_h, kj = dj / w.dilation_w;
        sum += cols[((p.b * w.out_h + oh) * w.out_w + ow) * w.patch() +
                    (ki * w.kernel_w + kj) * w.channels + p.c];
      }
    dx[i] = sum;
  }
}

// The window of output (oh, ow) clipped to the image.
struct Clip {
  int64_t h0, h1, w0, w1;
};

__device__ Clip clip(const Window2d& w, int64_t oh, int64_t ow) {
  const int64_t top = oh * w.stride_h - w.pad_top, left = ow * w.stride_w - w.pad_left;
  return {max(top, int64_t{0}), min(top + w.kernel_h, w.height), max(left, int64_t{0}),
          min(left + w.kernel_w, w.width)};
}

// Whether input pixel `at` (ih * width + iw) of sample b takes part in average pooling: all do
// without a mask.
__device__ bool counted(const float* mask, int64_t b, int64_t at, const Window2d& w) {
  return !mask || mask[b * w.height * w.width + at] != 0.0f;
}

// The number of pixels of window k that take part in average pooling.
__device__ float counted_pixels(const float* mask, int64_t b, const Window2d& w, const Clip& k) {
  if (!mask) return static_cast<float>((k.h1 - k.h0) * (k.w1 - k.w0));
  int64_t pixels = 0;
  for (int64_t ih = k.h0; ih < k.h1; ++ih)
    for (int64_t iw = k.w0; iw < k.w1; ++iw) pixels += counted(mask, b, ih * w.width + iw, w);
  return static_cast<float>(pixels);
}

// One thread per output element (b, oh, ow, c); max pooling takes no mask. `mean` false: the
// average pooling's sums, undivided.
__global__ void pool_forward_kernel(const float* x, const float* mask, float* y, int64_t n,
                                    Window2d w, bool max_pool, bool mean) {
  for (int64_t i = start(); i < n; i += stride()) {
    const int64_t c = i % w.channels;
    const int64_t ow = (i / w.channels) % w.out_w, oh = (i / (w.channels * w.out_w)) % w.out_h;
    const int64_t b = i / (w.out_pixels() * w.channels);
    const Clip k = clip(w, oh, ow);
    const float* img = x + b * w.height * w.width * w.channels + c;
    float acc = max_pool ? img[(k.h0 * w.width + k.w0) * w.channels] : 0.0f;
    for (int64_t ih = k.h0; ih < k.h1; ++ih)
      for (int64_t iw = k.w0; iw < k.w1; ++iw) {
        if (!counted(mask, b, ih * w.width + iw, w)) continue;
        const float v = img[(ih * w.width + iw) * w.channels];
        acc = max_pool ? fmaxf(acc, v) : acc + v;
      }
    const float pixels = max_pool || !mean ? 1.0f : counted_pixels(mask, b, w, k);
    y[i] = max_pool ? acc : pixels > 0 ? acc / pixels : 0.0f;
  }
}

// One thread per element of dx, gathering from the windows that cover it: average pooling's
// share, or max pooling's dy where this pixel is its window's first maximum.
__global__ void pool_backward_kernel(const float* x, const float* y, const float* mask,
                                     const float* dy, float* dx, int64_t n, Window2d w,
                                     bool max_pool, bool mean) {
  for (int64_t i = start(); i < n; i += stride()) {
    const Covered p = covered(i, w);
    const float* img = x ? x + p.b * w.height * w.width * w.channels + p.c : nullptr;
    if (!counted(mask, p.b, p.ih * w.width + p.iw, w)) {  // masked out: no window's share
      dx[i] = 0;
      continue;
    }
    float sum = 0;
    for (int64_t oh = p.oh0; oh <= p.oh1; ++oh)
      for (int64_t ow = p.ow0; ow <= p.ow1; ++ow) {
        const int64_t at = ((p.b * w.out_h + oh) * w.out_w + ow) * w.channels + p.c;
        const Clip k = clip(w, oh, ow);
        if (!max_pool) {
          sum += mean ? dy[at] / counted_pixels(mask, p.b, w, k) : dy[at];
          continue;
        }
        // Is (ih, iw) the first pixel of the window, in row-major order, holding the maximum?
        int64_t first = -1;
        for (int64_t h = k.h0; h < k.h1 && first < 0; ++h)
          for (int64_t v = k.w0; v < k.w1 && first < 0; ++v)
            if (img[(h * w.width + v) * w.channels] == y[at]) first = h * w.width + v;
        if (first == p.ih * w.width + p.iw) sum += dy[at];
      }
    dx[i] = sum;
  }
}

__global__ void dropout_kernel(const float* in, float* out, int64_t n, int64_t row_size,
                               int64_t width, float rate, float scale, uint64_t key,
                               int64_t first_row) {
  for (int64_t i = start(); i < n; i += stride()) {
    const auto counter = static_cast<uint64_t>((first_row + i / row_size) * width + i % width);
    out[i] = dropout_drops(key, counter, rate) ? 0.0f : in[i] * scale;
  }
}

}  // namespace

void im2col(const float* x, float* cols, int64_t batch, const Window2d& w, cudaStream_t stream) {
  const int64_t n = batch * w.out_pixels() * w.patch();
  im2col_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, cols, n, w);
  cudaCheck(cudaGetLastError());
}

void col2im(const float* cols, float* dx, int64_t batch, const Window2d& w, cudaStream_t stream) {
  const int64_t n = batch * w.height * w.width * w.channels;
  col2im_kernel<<<blocks_for(n), kThreads, 0, stream>>>(cols, dx, n, w);
  cudaCheck(cudaGetLastError());
}

namespace {

// One thread per output element forward, per input element backward.
void pool_forward(const float* x, const float* mask, float* y, int64_t batch, const Window2d& w,
                  bool max_pool, bool mean, cudaStream_t stream) {
  const int64_t n = batch * w.out_pixels() * w.channels;
  pool_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, mask, y, n, w, max_pool, mean);
  cudaCheck(cudaGetLastError());
}

void pool_backward(const float* x, const float* y, const float* mask, const float* dy, float* dx,
                   int64_t batch, const Window2d& w, bool max_pool, bool mean,
                   cudaStream_t stream) {
  const int64_t n = batch * w.height * w.width * w.channels;
  pool_backward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, mask, dy, dx, n, w, max_pool,
                                                               mean);
  cudaCheck(cudaGetLastError());
}

}  // namespace

void max_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w,
                      cudaStream_t stream) {
  pool_forward(x, nullptr, y, batch, w, true, true, stream);
}

void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                       const Window2d& w, cudaStream_t stream) {
  pool_backward(x, y, nullptr, dy, dx, batch, w, true, true, stream);
}

void avg_pool_forward(const float* x, const float* mask, float* y, int64_t batch, const Window2d& w,
                      bool mean, cudaStream_t stream) {
  pool_forward(x, mask, y, batch, w, false, mean, stream);
}

void avg_pool_backward(const float* mask, const float* dy, float* dx, int64_t batch,
                       const Window2d& w, bool mean, cudaStream_t stream) {
  pool_backward(nullptr, nullptr, mask, dy, dx, batch, w, false, mean, stream);
}

void dropout(const float* in, float* out, int64_t rows, int64_t row_size, int64_t steps, float rate,
             uint64_t key, int64_t first_row, cudaStream_t stream) {
  const int64_t n = rows * row_size;
  dropout_kernel<<<blocks_for(n), kThreads, 0, stream>>>(
      in, out, n, row_size, row_size / steps, rate, 1.0f / (1.0f - rate), key, first_row);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
