#include "backend/cpu_window_ops.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/counter_hash.h"

namespace ddp::cpu {
namespace {

// The window of output pixel (oh, ow) clipped to the image: rows [h0, h1), columns [w0, w1) of
// the input, and where that starts within the kernel (ki0, kj0).
struct Clip {
  int64_t h0, h1, w0, w1, ki0, kj0;
};

Clip clip(const Window2d& w, int64_t oh, int64_t ow) {
  const int64_t top = oh * w.stride_h - w.pad_top;
  const int64_t left = ow * w.stride_w - w.pad_left;
  Clip c;
  c.h0 = std::max<int64_t>(top, 0);
  c.h1 = std::min(top + w.kernel_h, w.height);
  c.w0 = std::max<int64_t>(left, 0);
  c.w1 = std::min(left + w.kernel_w, w.width);
  c.ki0 = c.h0 - top;
  c.kj0 = c.w0 - left;
  return c;
}

// Calls f(b, pixel, clip) for every output pixel of every sample: pixel counts output pixels
// over the whole batch, (b * out_h + oh) * out_w + ow.
template <class F>
void for_each_window(const Window2d& w, int64_t batch, F f) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t oh = 0; oh < w.out_h; ++oh)
      for (int64_t ow = 0; ow < w.out_w; ++ow)
        f(b, (b * w.out_h + oh) * w.out_w + ow, clip(w, oh, ow));
}

}  // namespace

void im2col(const float* x, float* cols, int64_t batch, const Window2d& w) {
  const int64_t c = w.channels, patch = w.patch(), image = w.height * w.width * c;
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    float* row = cols + pixel * patch;
    if (k.h1 - k.h0 < w.kernel_h || k.w1 - k.w0 < w.kernel_w)
      std::memset(row, 0, static_cast<size_t>(patch) * sizeof(float));
    // Each kernel row is one contiguous run of (w1 - w0) * channels floats in the image.
    const auto run = static_cast<size_t>((k.w1 - k.w0) * c) * sizeof(float);
    for (int64_t ih = k.h0; ih < k.h1; ++ih)
      std::memcpy(row + ((ih - k.h0 + k.ki0) * w.kernel_w + k.kj0) * c,
                  x + b * image + (ih * w.width + k.w0) * c, run);
  });
}

void col2im(const float* cols, float* dx, int64_t batch, const Window2d& w) {
  const int64_t c = w.channels, patch = w.patch(), image = w.height * w.width * c;
  std::memset(dx, 0, static_cast<size_t>(batch * image) * sizeof(float));
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    const float* row = cols + pixel * patch;
    const int64_t run = (k.w1 - k.w0) * c;
    for (int64_t ih = k.h0; ih < k.h1; ++ih) {
      const float* src = row + ((ih - k.h0 + k.ki0) * w.kernel_w + k.kj0) * c;
      float* dst = dx + b * image + (ih * w.width + k.w0) * c;
      for (int64_t i = 0; i < run; ++i) dst[i] += src[i];
    }
  });
}

void max_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w) {
  const int64_t c = w.channels, image = w.height * w.width * c;
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    float* out = y + pixel * c;
    std::copy_n(x + b * image + (k.h0 * w.width + k.w0) * c, c, out);
    for (int64_t ih = k.h0; ih < k.h1; ++ih)
      for (int64_t iw = k.w0; iw < k.w1; ++iw) {
        const float* in = x + b * image + (ih * w.width + iw) * c;
        for (int64_t ch = 0; ch < c; ++ch) out[ch] = std::max(out[ch], in[ch]);
      }
  });
}

void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                       const Window2d& w) {
  const int64_t c = w.channels, image = w.height * w.width * c;
  std::memset(dx, 0, static_cast<size_t>(batch * image) * sizeof(float));
  // Per channel, whether the window's maximum has been routed yet: the first pixel (in row-major
  // window order) that holds it takes the whole gradient. Branch-free, so the channel loop
  // vectorizes.
  std::vector<float> pending(static_cast<size_t>(c));
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    const int64_t at = pixel * c;
    std::fill(pending.begin(), pending.end(), 1.0f);
    for (int64_t ih = k.h0; ih < k.h1; ++ih)
      for (int64_t iw = k.w0; iw < k.w1; ++iw) {
        const int64_t i = b * image + (ih * w.width + iw) * c;
        for (int64_t ch = 0; ch < c; ++ch) {
          const bool route = x[i + ch] == y[at + ch] && pending[ch] != 0.0f;
          dx[i + ch] += route ? dy[at + ch] : 0.0f;
          pending[ch] = route ? 0.0f : pending[ch];
        }
      }
  });
}

void avg_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w) {
  const int64_t c = w.channels, image = w.height * w.width * c;
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    float* out = y + pixel * c;
    std::fill_n(out, c, 0.0f);
    for (int64_t ih = k.h0; ih < k.h1; ++ih)
      for (int64_t iw = k.w0; iw < k.w1; ++iw) {
        const float* in = x + b * image + (ih * w.width + iw) * c;
        for (int64_t ch = 0; ch < c; ++ch) out[ch] += in[ch];
      }
    const float scale = 1.0f / static_cast<float>((k.h1 - k.h0) * (k.w1 - k.w0));
    for (int64_t ch = 0; ch < c; ++ch) out[ch] *= scale;
  });
}

void avg_pool_backward(const float* dy, float* dx, int64_t batch, const Window2d& w) {
  const int64_t c = w.channels, image = w.height * w.width * c;
  std::memset(dx, 0, static_cast<size_t>(batch * image) * sizeof(float));
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    const float* grad = dy + pixel * c;
    const float scale = 1.0f / static_cast<float>((k.h1 - k.h0) * (k.w1 - k.w0));
    for (int64_t ih = k.h0; ih < k.h1; ++ih)
      for (int64_t iw = k.w0; iw < k.w1; ++iw) {
        float* out = dx + b * image + (ih * w.width + iw) * c;
        for (int64_t ch = 0; ch < c; ++ch) out[ch] += grad[ch] * scale;
      }
  });
}

void dropout(const float* in, float* out, int64_t rows, int64_t row_size, float rate, uint64_t key,
             int64_t first_row) {
  const float keep_scale = 1.0f / (1.0f - rate);
  const auto first = static_cast<uint64_t>(first_row * row_size);
  const int64_t count = rows * row_size;
  for (int64_t i = 0; i < count; ++i)
    out[i] = dropout_drops(key, first + static_cast<uint64_t>(i), rate) ? 0.0f : in[i] * keep_scale;
}

}  // namespace ddp::cpu
