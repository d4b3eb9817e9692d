#include "backend/cpu_window_ops.h"

#include <algorithm>
#include <cstring>

#include "core/counter_hash.h"
#include "core/simd.h"

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

// Note [dilated convolution]: a dilated window's taps are not one run of the image: each tap's
// channels are copied alone (or zeros where it falls on padding), and added back alone.
template <typename F>
void for_each_dilated_tap(const Window2d& w, int64_t batch, F f) {
  const int64_t c = w.channels, image = w.height * w.width * c;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t oh = 0; oh < w.out_h; ++oh)
      for (int64_t ow = 0; ow < w.out_w; ++ow) {
        const int64_t row = ((b * w.out_h + oh) * w.out_w + ow) * w.patch();
        for (int64_t i = 0; i < w.kernel_h; ++i)
          for (int64_t j = 0; j < w.kernel_w; ++j) {
            const int64_t ih = oh * w.stride_h - w.pad_top + i * w.dilation_h;
            const int64_t iw = ow * w.stride_w - w.pad_left + j * w.dilation_w;
            const bool inside = ih >= 0 && ih < w.height && iw >= 0 && iw < w.width;
            f(row + (i * w.kernel_w + j) * c, inside ? b * image + (ih * w.width + iw) * c : -1);
          }
      }
}

}  // namespace

void im2col(const float* x, float* cols, int64_t batch, const Window2d& w) {
  const int64_t c = w.channels, patch = w.patch(), image = w.height * w.width * c;
  if (w.dilated()) {
    for_each_dilated_tap(w, batch, [&](int64_t col, int64_t at) {
      if (at < 0)
        std::fill_n(cols + col, c, 0.0f);
      else
        std::copy_n(x + at, c, cols + col);
    });
    return;
  }
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
  if (w.dilated()) {
    for_each_dilated_tap(w, batch, [&](int64_t col, int64_t at) {
      if (at >= 0)
        for (int64_t i = 0; i < c; ++i) dx[at + i] += cols[col + i];
    });
    return;
  }
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

namespace {

// Routes one window's gradient, channel by channel, to the first pixel (in row-major window
// order) that holds its maximum. Disjoint windows store each input pixel's gradient outright;
// overlapping ones add to it. x, top (the window's maxima), grad and dx start at the channel.
template <bool kDisjoint>
void route_to_maximum(const float* x, const float* top, const float* grad, float* dx,
                      const Window2d& w, const Clip& k, int64_t first) {
  bool pending = true;
  for (int64_t ih = k.h0; ih < k.h1; ++ih)
    for (int64_t iw = k.w0; iw < k.w1; ++iw) {
      const int64_t i = first + (ih * w.width + iw) * w.channels;
      const bool route = pending && x[i] == *top;
      const float g = route ? *grad : 0.0f;
      dx[i] = kDisjoint ? g : dx[i] + g;
      pending = pending && !route;
    }
}

#ifdef DDP_SIMD_TILES
// The same for a vector of channels, its "routed yet" flags in a mask (with the flags of all
// channels in memory the loop ran scalar: 9 ms for W4's first pooling against 0.8 for its
// forward).
template <bool kDisjoint>
void route_to_maxima(const float* x, const float* top, const float* grad, float* dx,
                     const Window2d& w, const Clip& k, int64_t first) {
  const simd::Vec maxima = simd::load(top), gradient = simd::load(grad);
  simd::Mask pending = simd::first_lanes(simd::kLanes);
  for (int64_t ih = k.h0; ih < k.h1; ++ih)
    for (int64_t iw = k.w0; iw < k.w1; ++iw) {
      const int64_t i = first + (ih * w.width + iw) * w.channels;
      const simd::Mask route = simd::both(simd::equal(simd::load(x + i), maxima), pending);
      const simd::Vec g = simd::keep(route, gradient);
      simd::store(dx + i, kDisjoint ? g : g + simd::load(dx + i));
      pending = simd::and_not(pending, route);
    }
}
#endif

template <bool kDisjoint>
void max_pool_routes(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                     const Window2d& w) {
  const int64_t c = w.channels, image = w.height * w.width * c;
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    int64_t ch = 0;
#ifdef DDP_SIMD_TILES
    for (; ch + simd::kLanes <= c; ch += simd::kLanes)
      route_to_maxima<kDisjoint>(x + ch, y + pixel * c + ch, dy + pixel * c + ch, dx + ch, w, k,
                                 b * image);
#endif
    for (; ch < c; ++ch)
      route_to_maximum<kDisjoint>(x + ch, y + pixel * c + ch, dy + pixel * c + ch, dx + ch, w, k,
                                  b * image);
  });
}

}  // namespace

void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                       const Window2d& w) {
  const int64_t image = w.height * w.width * w.channels;
  const bool disjoint = w.stride_h >= w.kernel_h && w.stride_w >= w.kernel_w;
  // Pixels in no window (or in several) need zeros first.
  const bool tiled = disjoint && w.stride_h == w.kernel_h && w.stride_w == w.kernel_w &&
                     w.pad_top == 0 && w.pad_left == 0 && w.out_h * w.stride_h == w.height &&
                     w.out_w * w.stride_w == w.width;
  if (!tiled) std::memset(dx, 0, static_cast<size_t>(batch * image) * sizeof(float));
  if (disjoint) {
    max_pool_routes<true>(x, y, dy, dx, batch, w);
  } else {
    max_pool_routes<false>(x, y, dy, dx, batch, w);
  }
}

namespace {

// Whether input pixel `at` (ih * width + iw) of sample b takes part in average pooling: all do
// without a mask.
bool counted(const float* mask, int64_t b, int64_t at, const Window2d& w) {
  return !mask || mask[b * w.height * w.width + at] != 0.0f;
}

// 1 / the number of pixels of window k that take part, or 0 where none does; 1 for sums.
float average_scale(const float* mask, int64_t b, const Window2d& w, const Clip& k, bool mean) {
  if (!mean) return 1.0f;
  if (!mask) return 1.0f / static_cast<float>((k.h1 - k.h0) * (k.w1 - k.w0));
  int64_t pixels = 0;
  for (int64_t ih = k.h0; ih < k.h1; ++ih)
    for (int64_t iw = k.w0; iw < k.w1; ++iw) pixels += counted(mask, b, ih * w.width + iw, w);
  return pixels ? 1.0f / static_cast<float>(pixels) : 0.0f;
}

}  // namespace

void avg_pool_forward(const float* x, const float* mask, float* y, int64_t batch, const Window2d& w,
                      bool mean) {
  const int64_t c = w.channels, image = w.height * w.width * c;
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    float* out = y + pixel * c;
    std::fill_n(out, c, 0.0f);
    for (int64_t ih = k.h0; ih < k.h1; ++ih)
      for (int64_t iw = k.w0; iw < k.w1; ++iw) {
        if (!counted(mask, b, ih * w.width + iw, w)) continue;
        const float* in = x + b * image + (ih * w.width + iw) * c;
        for (int64_t ch = 0; ch < c; ++ch) out[ch] += in[ch];
      }
    const float scale = average_scale(mask, b, w, k, mean);
    for (int64_t ch = 0; ch < c; ++ch) out[ch] *= scale;
  });
}

void avg_pool_backward(const float* mask, const float* dy, float* dx, int64_t batch,
                       const Window2d& w, bool mean) {
  const int64_t c = w.channels, image = w.height * w.width * c;
  std::memset(dx, 0, static_cast<size_t>(batch * image) * sizeof(float));
  for_each_window(w, batch, [&](int64_t b, int64_t pixel, const Clip& k) {
    const float* grad = dy + pixel * c;
    const float scale = average_scale(mask, b, w, k, mean);
    for (int64_t ih = k.h0; ih < k.h1; ++ih)
      for (int64_t iw = k.w0; iw < k.w1; ++iw) {
        if (!counted(mask, b, ih * w.width + iw, w)) continue;
        float* out = dx + b * image + (ih * w.width + iw) * c;
        for (int64_t ch = 0; ch < c; ++ch) out[ch] += grad[ch] * scale;
      }
  });
}

void dropout(const float* in, float* out, int64_t rows, int64_t row_size, int64_t steps, float rate,
             uint64_t key, int64_t first_row) {
  if (rate == 0) {  // evaluation: every element kept, times 1
    if (in != out) std::memmove(out, in, static_cast<size_t>(rows * row_size) * sizeof(float));
    return;
  }
  const float keep_scale = 1.0f / (1.0f - rate);
  const uint64_t threshold = dropout_threshold(rate);
  const int64_t width = row_size / steps;
  for (int64_t i = 0; i < rows * row_size; i += width) {
    const auto first = static_cast<uint64_t>((first_row + i / row_size) * width);
    for (int64_t e = 0; e < width; ++e)
      out[i + e] = dropout_drops_below(key, first + static_cast<uint64_t>(e), threshold)
                       ? 0.0f
                       : in[i + e] * keep_scale;
  }
}

}  // namespace ddp::cpu
