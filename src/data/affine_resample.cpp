#include "data/affine_resample.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ddp {

AffineTransform rotation_transform(double turns, int64_t height, int64_t width) {
  const double theta = turns * 2 * std::numbers::pi;
  const auto cos_theta = static_cast<float>(std::cos(theta));
  const auto sin_theta = static_cast<float>(std::sin(theta));
  const float cx = 0.5f * static_cast<float>(width - 1);
  const float cy = 0.5f * static_cast<float>(height - 1);
  AffineTransform t;
  t.a0 = cos_theta;
  t.a1 = -sin_theta;
  // Keras' cx - cx a0 - cy a1, with the fused multiply-adds spelled out (Note [bilinear bits]).
  t.a2 = std::fma(-cy, t.a1, std::fma(-cx, t.a0, cx));
  t.b0 = sin_theta;
  t.b1 = cos_theta;
  t.b2 = std::fma(-cy, t.b1, std::fma(-cx, t.b0, cy));
  return t;
}

AffineTransform translation_transform(float down, float right) {
  AffineTransform t;
  t.a2 = -right;
  t.b2 = -down;
  return t;
}

AffineTransform zoom_transform(float zoom_height, float zoom_width, int64_t height, int64_t width) {
  AffineTransform t;
  t.a0 = zoom_width;
  t.a2 = (static_cast<float>(width) - 1) / 2 * (1 - zoom_width);
  t.b1 = zoom_height;
  t.b2 = (static_cast<float>(height) - 1) / 2 * (1 - zoom_height);
  return t;
}

float map_coordinate(float c, int64_t n, FillMode fill) {
  const auto len = static_cast<float>(n);
  switch (fill) {
    case FillMode::kConstant:
      return c;
    case FillMode::kNearest:
      break;
    case FillMode::kReflect:  // d c b a | a b c d | d c b a, a period of 2n
      if (n <= 1) return 0;
      // The divisions give whole periods, none within one period of the image (skipped there).
      if (c < 0) {
        if (c <= -2 * len) c += 2 * len * static_cast<float>(static_cast<int64_t>(-c / (2 * len)));
        c = c < -len ? c + 2 * len : -c - 1;
      } else if (c > len - 1) {
        if (c >= 2 * len) c -= 2 * len * static_cast<float>(static_cast<int64_t>(c / (2 * len)));
        if (c >= len) c = 2 * len - c - 1;
      }
      break;
    case FillMode::kWrap:  // a b c d | a b c d | a b c d, with TensorFlow's step of n - 1
      if (n <= 1) return 0;
      if (c < 0) {
        c += len * static_cast<float>(static_cast<int64_t>(-c / (len - 1)) + 1);
      } else if (c > len - 1) {
        c -= len * static_cast<float>(static_cast<int64_t>(c / (len - 1)));
      }
      break;
  }
  return std::clamp(c, 0.0f, len - 1);
}

namespace {

// Where x rounds to, ties away from zero, for x >= 0 (std::round without the library call).
int64_t round_half_away(float x) {
  const float whole = std::trunc(x);
  return static_cast<int64_t>(whole) + (x - whole >= 0.5f);
}

// Note [bilinear bits]: every path computes a coordinate and a bilinear value with these fused
// multiply-adds, in this order (and the transforms theirs), so the paths for inside and edge
// pixels, any channel count, and builds without FMA instructions (std::fma in software) give the
// same bits: the compiler cannot fuse differently what is fused by hand. (A vector path with
// AVX-512 gathers was slower on Zen 4: benchmarks/results/zen4/tried_not_kept.md.)
float coordinate(float a, float b, float c, float out_x, float out_y) {
  return std::fma(a, out_x, std::fma(b, out_y, c));
}
float bilinear(float x, float x0, float y, float y0, float p00, float p01, float p10, float p11) {
  const float top = std::fma(x0 + 1 - x, p00, (x - x0) * p01);
  const float bottom = std::fma(x0 + 1 - x, p10, (x - x0) * p11);
  return std::fma(y0 + 1 - y, top, (y - y0) * bottom);
}

// One output pixel at input (x, y) read through the fill mode: the general path, for the edges.
[[gnu::noinline]] void resample_pixel(float x, float y, const float* in, float* to, int64_t height,
                                      int64_t width, int64_t channels, FillMode fill,
                                      float fill_value, Interpolation interpolation) {
  x = map_coordinate(x, width, fill);
  y = map_coordinate(y, height, fill);
  // Channel c of pixel (y, x), or fill_value outside the image.
  const auto pixel = [&](int64_t py, int64_t px, int64_t c) {
    return py >= 0 && py < height && px >= 0 && px < width ? in[(py * width + px) * channels + c]
                                                           : fill_value;
  };
  if (interpolation == Interpolation::kNearest) {
    const auto ny = static_cast<int64_t>(std::round(y));
    const auto nx = static_cast<int64_t>(std::round(x));
    for (int64_t c = 0; c < channels; ++c) to[c] = pixel(ny, nx, c);
    return;
  }
  const float x0 = std::floor(x), y0 = std::floor(y);
  const auto ix = static_cast<int64_t>(x0), iy = static_cast<int64_t>(y0);
  for (int64_t c = 0; c < channels; ++c)
    to[c] = bilinear(x, x0, y, y0, pixel(iy, ix, c), pixel(iy, ix + 1, c), pixel(iy + 1, ix, c),
                     pixel(iy + 1, ix + 1, c));
}

// affine_resample with kChannels channels where that is 1 or 3, else 0 (`channels` then).
template <int kChannels, bool kBilinear>
void resample(const AffineTransform& t, const float* in, float* out, int64_t height, int64_t width,
              int64_t channels, FillMode fill, float fill_value, Interpolation interpolation) {
  const int64_t ch = kChannels ? kChannels : channels;
  const int64_t row = width * ch;
  const auto last_x = static_cast<float>(width - 1), last_y = static_cast<float>(height - 1);
  for (int64_t oy = 0; oy < height; ++oy) {
    const auto fy = static_cast<float>(oy);
    for (int64_t ox = 0; ox < width; ++ox) {
      const auto fx = static_cast<float>(ox);
      const float x = coordinate(t.a0, t.a1, t.a2, fx, fy),
                  y = coordinate(t.b0, t.b1, t.b2, fx, fy);
      float* const to = out + oy * row + ox * ch;
      // Most pixels read inside the image, where every fill mode leaves the coordinates as they
      // are and every neighbour is a pixel: resample_pixel's arithmetic without its mapping and
      // checks. Bilinear needs the far neighbours inside too: floor(x) in [0, width - 1), which
      // one unsigned comparison of the whole part tests (a negative one wraps above; rotations
      // about the centre and zooms up to 2 keep coordinates within a few image sizes).
      if constexpr (kBilinear) {
        const float x0 = std::floor(x), y0 = std::floor(y);
        const auto ix = static_cast<int32_t>(x0), iy = static_cast<int32_t>(y0);
        if (static_cast<uint32_t>(ix) < static_cast<uint32_t>(width - 1) &&
            static_cast<uint32_t>(iy) < static_cast<uint32_t>(height - 1)) {
          const float* const p = in + iy * row + ix * ch;
          for (int64_t c = 0; c < ch; ++c)
            to[c] = bilinear(x, x0, y, y0, p[c], p[ch + c], p[row + c], p[row + ch + c]);
          continue;
        }
      } else if (x >= 0 && y >= 0 && x <= last_x && y <= last_y) {
        const float* const p = in + round_half_away(y) * row + round_half_away(x) * ch;
        for (int64_t c = 0; c < ch; ++c) to[c] = p[c];
        continue;
      }
      resample_pixel(x, y, in, to, height, width, ch, fill, fill_value, interpolation);
    }
  }
}

}  // namespace

void affine_resample(const AffineTransform& t, const float* in, float* out, int64_t height,
                     int64_t width, int64_t channels, FillMode fill, float fill_value,
                     Interpolation interpolation) {
  const bool bilinear = interpolation == Interpolation::kBilinear;
  const auto run = channels == 1   ? (bilinear ? &resample<1, true> : &resample<1, false>)
                   : channels == 3 ? (bilinear ? &resample<3, true> : &resample<3, false>)
                                   : (bilinear ? &resample<0, true> : &resample<0, false>);
  run(t, in, out, height, width, channels, fill, fill_value, interpolation);
}

}  // namespace ddp
