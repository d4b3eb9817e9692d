#include "backend/direct_conv.h"

#include <algorithm>
#include <cstring>

#include "backend/activation_grad.h"
#include "backend/column_sums.h"
#include "core/simd.h"

namespace ddp::cpu {

#ifdef DDP_SIMD_TILES
namespace {

using simd::kLanes;
using simd::Vec;

// Filter vectors per tile: a block of at most kMaxVectors vectors of filters is held in registers
// beside the pixels (forward) or taps (weight gradient) of the tile, leaving two registers for
// the broadcast value and the compiler.
constexpr int kMaxVectors = 4;
constexpr int kMaxTileRows = 8;
template <int Vectors>
constexpr int tile_rows() {
  return std::min(kMaxTileRows, (simd::kRegisters - 2 - Vectors) / Vectors);
}

// Runs body.template operator()<Vectors>(first_filter, filters_left) for each block of at most
// kMaxVectors vectors of filters, Vectors being the block's count.
template <typename F>
void for_each_filter_block(int64_t filters, F&& body) {
  for (int64_t f0 = 0; f0 < filters; f0 += kMaxVectors * kLanes) {
    const int64_t left = filters - f0;
    const int vectors =
        static_cast<int>(std::min<int64_t>(kMaxVectors, (left + kLanes - 1) / kLanes));
    simd::with_count<kMaxVectors>(
        vectors, [&]<int Vectors>() { body.template operator()<Vectors>(f0, left); });
  }
}

// The image with its padding: every window of the output lies inside it.
struct Padded {
  int64_t rows, cols, channels;
  int64_t row_stride() const { return cols * channels; }
  int64_t size() const { return rows * cols * channels; }
};

Padded padded_of(const Window2d& w) {
  return {(w.out_h - 1) * w.stride_h + w.kernel_h, (w.out_w - 1) * w.stride_w + w.kernel_w,
          w.channels};
}

void pad_image(const float* x, const Window2d& w, const Padded& p, float* dst) {
  std::fill(dst, dst + p.size(), 0.0f);
  const int64_t columns = std::min(w.width, p.cols - w.pad_left);
  for (int64_t r = 0; r < p.rows; ++r) {
    const int64_t h = r - w.pad_top;
    if (h < 0 || h >= w.height || columns <= 0) continue;
    std::memcpy(dst + r * p.row_stride() + w.pad_left * p.channels, x + h * w.width * w.channels,
                static_cast<size_t>(columns * w.channels) * sizeof(float));
  }
}

// Where each tap (kernel row, kernel column, channel: the weights' order) lies from a window's
// first element in the padded image.
std::vector<int64_t> tap_offsets(const Window2d& w, const Padded& p) {
  std::vector<int64_t> offsets;
  for (int64_t i = 0; i < w.kernel_h; ++i)
    for (int64_t j = 0; j < w.kernel_w; ++j)
      for (int64_t c = 0; c < w.channels; ++c)
        offsets.push_back(i * p.row_stride() + j * p.channels + c);
  return offsets;
}

const float* window_start(const float* image, const Window2d& w, const Padded& p, int64_t pixel) {
  const int64_t oh = pixel / w.out_w, ow = pixel % w.out_w;
  return image + oh * w.stride_h * p.row_stride() + ow * w.stride_w * p.channels;
}

// The output pixels [first, first + Pixels) against filter vectors [0, Vectors) of the block that
// wt, bias and y start at; filters_left: filters from the block's first to the last.
template <int Vectors, int Pixels>
void forward_tile(const float* image, const Window2d& w, const Padded& p,
                  const std::vector<int64_t>& offsets, const float* wt, int64_t wt_stride,
                  const float* bias, bool relu, float* y, int64_t filters, int64_t filters_left,
                  int64_t first) {
  const float* window[Pixels];
  for (int q = 0; q < Pixels; ++q) window[q] = window_start(image, w, p, first + q);
  Vec acc[Pixels][Vectors];
  for (int v = 0; v < Vectors; ++v) {
    const Vec b = simd::load(bias + v * kLanes);
    for (int q = 0; q < Pixels; ++q) acc[q][v] = b;
  }
  for (size_t t = 0; t < offsets.size(); ++t) {
    Vec wv[Vectors];
    for (int v = 0; v < Vectors; ++v) wv[v] = simd::load(wt + t * wt_stride + v * kLanes);
    for (int q = 0; q < Pixels; ++q) {
      const Vec xv = simd::broadcast(window[q][offsets[t]]);
      for (int v = 0; v < Vectors; ++v) acc[q][v] = simd::fma(xv, wv[v], acc[q][v]);
    }
  }
  for (int q = 0; q < Pixels; ++q) {
    float* out = y + (first + q) * filters;
    for (int v = 0; v < Vectors; ++v) {
      const Vec r = relu ? simd::max(acc[q][v], simd::zero()) : acc[q][v];
      const int64_t lanes = filters_left - v * kLanes;
      simd::store_edge(out + v * kLanes, simd::first_lanes(lanes), lanes >= kLanes, r);
    }
  }
}

// Adds, for the taps [first, first + Taps) (offsets padded to a whole number of tiles), the
// products of every output pixel's gradient (filter vectors [0, Vectors) of the block dz starts
// at) with the pixel's window value at the tap to dwt's rows.
template <int Vectors, int Taps>
void weight_grad_tile(const float* image, const Window2d& w, const Padded& p,
                      const int64_t* offsets, const float* dz, int64_t filters,
                      int64_t filters_left, float* dwt, int64_t dwt_stride) {
  Vec acc[Taps][Vectors];
  for (int k = 0; k < Taps; ++k)
    for (int v = 0; v < Vectors; ++v) acc[k][v] = simd::zero();
  for (int64_t oh = 0; oh < w.out_h; ++oh) {
    const float* row = image + oh * w.stride_h * p.row_stride();
    const float* grad_row = dz + oh * w.out_w * filters;
    for (int64_t ow = 0; ow < w.out_w; ++ow) {
      const float* window = row + ow * w.stride_w * p.channels;
      const float* grad = grad_row + ow * filters;
      Vec g[Vectors];
      for (int v = 0; v < Vectors; ++v) {
        const int64_t lanes = filters_left - v * kLanes;
        g[v] = simd::load_edge(grad + v * kLanes, simd::first_lanes(lanes), lanes >= kLanes);
      }
      for (int k = 0; k < Taps; ++k) {
        const Vec xv = simd::broadcast(window[offsets[k]]);
        for (int v = 0; v < Vectors; ++v) acc[k][v] = simd::fma(xv, g[v], acc[k][v]);
      }
    }
  }
  for (int k = 0; k < Taps; ++k)
    for (int v = 0; v < Vectors; ++v) {
      float* row = dwt + k * dwt_stride + v * kLanes;
      simd::store(row, simd::load(row) + acc[k][v]);
    }
}

int64_t padded_filters(int64_t filters) { return (filters + kLanes - 1) / kLanes * kLanes; }

}  // namespace

bool direct_conv_applies(const Window2d& w) {
  return w.channels <= kDirectConvMaxChannels && w.out_h > 0 && w.out_w > 0;
}

void direct_conv_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                         const Window2d& win, int64_t filters, bool relu,
                         std::vector<float>& scratch) {
  const Padded p = padded_of(win);
  const std::vector<int64_t> offsets = tap_offsets(win, p);
  const int64_t taps = win.patch(), stride = padded_filters(filters);
  // (taps, filters) weights and the bias, zero beyond the last filter; then the padded image.
  scratch.assign(static_cast<size_t>((taps + 1) * stride + p.size()), 0.0f);
  float* wt = scratch.data();
  float* bias = wt + taps * stride;
  float* image = bias + stride;
  for (int64_t f = 0; f < filters; ++f) {
    for (int64_t t = 0; t < taps; ++t) wt[t * stride + f] = w[f * taps + t];
    bias[f] = b[f];
  }
  const int64_t pixels = win.out_pixels();
  for (int64_t n = 0; n < batch; ++n) {
    pad_image(x + n * win.height * win.width * win.channels, win, p, image);
    float* out = y + n * pixels * filters;
    for_each_filter_block(filters, [&]<int Vectors>(int64_t f0, int64_t left) {
      constexpr int kPixels = tile_rows<Vectors>();
      int64_t first = 0;
      for (; first + kPixels <= pixels; first += kPixels)
        forward_tile<Vectors, kPixels>(image, win, p, offsets, wt + f0, stride, bias + f0, relu,
                                       out + f0, filters, left, first);
      for (; first < pixels; ++first)
        forward_tile<Vectors, 1>(image, win, p, offsets, wt + f0, stride, bias + f0, relu, out + f0,
                                 filters, left, first);
    });
  }
}

void direct_conv_weight_grad(const float* x, const float* y, const float* dy, Activation act,
                             float* dw, float* db, int64_t batch, const Window2d& win,
                             int64_t filters, bool accumulate, std::vector<float>& scratch) {
  const Padded p = padded_of(win);
  std::vector<int64_t> offsets = tap_offsets(win, p);
  const int64_t taps = win.patch(), stride = padded_filters(filters);
  const int64_t pixels = win.out_pixels();
  // Taps in groups of the tile's height; the last group's missing taps read the window's first
  // element into rows past the last tap, which are dropped.
  const int64_t padded_taps = taps + kMaxTileRows;
  offsets.resize(static_cast<size_t>(padded_taps), 0);
  // (taps, filters) sums, the padded image, then the image's dLoss/d(pre-activation).
  const int64_t out = pixels * filters;
  scratch.assign(static_cast<size_t>(padded_taps * stride + p.size() + out), 0.0f);
  float* dwt = scratch.data();
  float* image = dwt + padded_taps * stride;
  float* grad = image + p.size();
  if (!accumulate) std::fill(db, db + filters, 0.0f);
  for (int64_t n = 0; n < batch; ++n) {
    pad_image(x + n * win.height * win.width * win.channels, win, p, image);
    activation_grad(act, y + n * out, dy + n * out, grad, static_cast<size_t>(out));
    add_column_sums(grad, pixels, filters, filters, db);
    for_each_filter_block(filters, [&]<int Vectors>(int64_t f0, int64_t left) {
      constexpr int kTaps = tile_rows<Vectors>();
      for (int64_t t = 0; t < taps; t += kTaps)
        weight_grad_tile<Vectors, kTaps>(image, win, p, offsets.data() + t, grad + f0, filters,
                                         left, dwt + t * stride + f0, stride);
    });
  }
  for (int64_t f = 0; f < filters; ++f)
    for (int64_t t = 0; t < taps; ++t) {
      const float sum = dwt[t * stride + f];
      dw[f * taps + t] = accumulate ? dw[f * taps + t] + sum : sum;
    }
}

#else

bool direct_conv_applies(const Window2d&) { return false; }
void direct_conv_forward(const float*, const float*, const float*, float*, int64_t, const Window2d&,
                         int64_t, bool, std::vector<float>&) {}
void direct_conv_weight_grad(const float*, const float*, const float*, Activation, float*, float*,
                             int64_t, const Window2d&, int64_t, bool, std::vector<float>&) {}

#endif

}  // namespace ddp::cpu
