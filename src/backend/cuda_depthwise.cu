#include "backend/cuda_check.h"
#include "backend/cuda_depthwise.h"
#include "backend/cuda_launch.cuh"

namespace ddp::cuda {
namespace {

// One thread per output element (b, oh, ow, c): its channel's taps that fall on the image.
__global__ void depthwise_forward_kernel(const float* x, const float* w, float* y, int64_t n,
                                         Window2d win) {
  for (int64_t i = start(); i < n; i += stride()) {
    const int64_t c = i % win.channels;
    const int64_t ow = (i / win.channels) % win.out_w;
    const int64_t oh = (i / (win.channels * win.out_w)) % win.out_h;
    const int64_t b = i / (win.out_pixels() * win.channels);
    float sum = 0;
    for (int64_t ki = 0; ki < win.kernel_h; ++ki) {
      const int64_t ih = oh * win.stride_h - win.pad_top + ki * win.dilation_h;
      if (ih < 0 || ih >= win.height) continue;
      for (int64_t kj = 0; kj < win.kernel_w; ++kj) {
        const int64_t iw = ow * win.stride_w - win.pad_left + kj * win.dilation_w;
        if (iw < 0 || iw >= win.width) continue;
        sum += x[((b * win.height + ih) * win.width + iw) * win.channels + c] *
               w[(c * win.kernel_h + ki) * win.kernel_w + kj];
      }
    }
    y[i] = sum;
  }
}

// One thread per input element (b, ih, iw, c): the output pixels whose taps fall on it.
__global__ void depthwise_input_grad_kernel(const float* dy, const float* w, float* dx, int64_t n,
                                            Window2d win) {
  for (int64_t i = start(); i < n; i += stride()) {
    const int64_t c = i % win.channels;
    const int64_t iw = (i / win.channels) % win.width;
    const int64_t ih = (i / (win.channels * win.width)) % win.height;
    const int64_t b = i / (win.height * win.width * win.channels);
    float sum = 0;
    for (int64_t ki = 0; ki < win.kernel_h; ++ki) {
      const int64_t th = ih + win.pad_top - ki * win.dilation_h;  // oh * stride_h
      if (th < 0 || th % win.stride_h != 0 || th / win.stride_h >= win.out_h) continue;
      for (int64_t kj = 0; kj < win.kernel_w; ++kj) {
        const int64_t tw = iw + win.pad_left - kj * win.dilation_w;
        if (tw < 0 || tw % win.stride_w != 0 || tw / win.stride_w >= win.out_w) continue;
        const int64_t out = (b * win.out_h + th / win.stride_h) * win.out_w + tw / win.stride_w;
        sum += dy[out * win.channels + c] * w[(c * win.kernel_h + ki) * win.kernel_w + kj];
      }
    }
    dx[i] = sum;
  }
}

// One block per kernel weight (c, ki, kj): its threads sum strided shares of the (b, oh, ow)
// positions, then a tree in shared memory adds the shares in a fixed order.
__global__ void depthwise_weight_grad_kernel(const float* x, const float* dy, float* dw,
                                             int64_t batch, Window2d win, bool accumulate) {
  const int64_t weight = blockIdx.x;
  const int64_t kj = weight % win.kernel_w, ki = (weight / win.kernel_w) % win.kernel_h;
  const int64_t c = weight / (win.kernel_h * win.kernel_w);
  float sum = 0;
  for (int64_t p = threadIdx.x; p < batch * win.out_pixels(); p += blockDim.x) {
    const int64_t ow = p % win.out_w, oh = (p / win.out_w) % win.out_h;
    const int64_t b = p / win.out_pixels();
    const int64_t ih = oh * win.stride_h - win.pad_top + ki * win.dilation_h;
    const int64_t iw = ow * win.stride_w - win.pad_left + kj * win.dilation_w;
    if (ih < 0 || ih >= win.height || iw < 0 || iw >= win.width) continue;
    sum +=
        dy[p * win.channels + c] * x[((b * win.height + ih) * win.width + iw) * win.channels + c];
  }
  __shared__ float shares[kThreads];
  shares[threadIdx.x] = sum;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shares[threadIdx.x] += shares[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) dw[weight] = (accumulate ? dw[weight] : 0.0f) + shares[0];
}

}  // namespace

void depthwise_forward(const float* x, const float* w, float* y, int64_t batch, const Window2d& win,
                       cudaStream_t stream) {
  const int64_t n = batch * win.out_pixels() * win.channels;
  depthwise_forward_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, w, y, n, win);
  cudaCheck(cudaGetLastError());
}

void depthwise_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                        int64_t batch, const Window2d& win, bool accumulate, cudaStream_t stream) {
  if (dx) {
    const int64_t n = batch * win.height * win.width * win.channels;
    depthwise_input_grad_kernel<<<blocks_for(n), kThreads, 0, stream>>>(dy, w, dx, n, win);
    cudaCheck(cudaGetLastError());
  }
  const auto weights = static_cast<unsigned>(win.channels * win.kernel_h * win.kernel_w);
  depthwise_weight_grad_kernel<<<weights, kThreads, 0, stream>>>(x, dy, dw, batch, win, accumulate);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
