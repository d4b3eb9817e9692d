#include "data/affine_resample.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

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
// multiply-adds, in this order (and the transforms theirs), so the vector path, the scalar paths
// and builds without FMA instructions (std::fma in software) give the same bits: the compiler
// cannot fuse differently what is fused by hand.
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

#ifdef __AVX512F__
// map_coordinate for 16 coordinates at once where it is simple: reflect within a period of the
// image, nearest, constant. `scalar` gets the lanes left to map_coordinate itself (wrap outside
// the image, reflect further out).
__m512 map_coordinates(__m512 c, int64_t n, FillMode fill, __mmask16& scalar) {
  const __m512 len = _mm512_set1_ps(static_cast<float>(n));
  const __m512 last = _mm512_set1_ps(static_cast<float>(n - 1));
  const __m512 period = _mm512_set1_ps(2 * static_cast<float>(n));
  const __m512 one = _mm512_set1_ps(1), zero = _mm512_setzero_ps();
  const __mmask16 below = _mm512_cmp_ps_mask(c, zero, _CMP_LT_OQ);
  const __mmask16 above = _mm512_cmp_ps_mask(c, last, _CMP_GT_OQ);
  switch (fill) {
    case FillMode::kConstant:
      return c;
    case FillMode::kWrap:
      scalar |= below | above;
      break;
    case FillMode::kReflect: {
      scalar |= _mm512_cmp_ps_mask(c, _mm512_sub_ps(zero, period), _CMP_LE_OQ) |
                _mm512_cmp_ps_mask(c, period, _CMP_GE_OQ);
      // c < 0: c < -n ? c + 2n : -c - 1; c >= n: 2n - c - 1 (map_coordinate's steps).
      const __mmask16 far_below = _mm512_cmp_ps_mask(c, _mm512_sub_ps(zero, len), _CMP_LT_OQ);
      const __m512 reflected_below =
          _mm512_mask_add_ps(_mm512_sub_ps(_mm512_sub_ps(zero, c), one), far_below, c, period);
      c = _mm512_mask_mov_ps(c, below, reflected_below);
      const __mmask16 past = _mm512_cmp_ps_mask(c, len, _CMP_GE_OQ) & above;
      c = _mm512_mask_sub_ps(c, past, _mm512_sub_ps(period, c), one);
      break;
    }
    case FillMode::kNearest:
      break;
  }
  // The zero-masking forms with every lane set: GCC 12 warns of the plain forms' undefined
  // pass-through (as core/simd.h notes).
  return _mm512_maskz_min_ps(0xFFFF, _mm512_maskz_max_ps(0xFFFF, c, zero), last);
}

// resample<1, true> 16 pixels at a time (Note [bilinear bits]): the lanes' coordinates mapped as
// above, the four neighbours gathered (fill_value outside the image), the lanes left over by
// map_coordinates resampled one by one.
void resample_grey_bilinear(const AffineTransform& t, const float* in, float* out, int64_t height,
                            int64_t width, FillMode fill, float fill_value) {
  const __m512 lanes = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i w = _mm512_set1_epi32(static_cast<int32_t>(width));
  const __m512i h = _mm512_set1_epi32(static_cast<int32_t>(height));
  const __m512i one = _mm512_set1_epi32(1);
  const __m512 fill_lanes = _mm512_set1_ps(fill_value);
  for (int64_t oy = 0; oy < height; ++oy) {
    const auto fy = _mm512_set1_ps(static_cast<float>(oy));
    const __m512 row_x = _mm512_fmadd_ps(_mm512_set1_ps(t.a1), fy, _mm512_set1_ps(t.a2));
    const __m512 row_y = _mm512_fmadd_ps(_mm512_set1_ps(t.b1), fy, _mm512_set1_ps(t.b2));
    for (int64_t ox = 0; ox < width; ox += 16) {
      const auto valid =
          static_cast<__mmask16>(width - ox >= 16 ? 0xFFFF : (1u << (width - ox)) - 1);
      const __m512 fx = _mm512_add_ps(_mm512_set1_ps(static_cast<float>(ox)), lanes);
      const __m512 x_out = _mm512_fmadd_ps(_mm512_set1_ps(t.a0), fx, row_x);
      const __m512 y_out = _mm512_fmadd_ps(_mm512_set1_ps(t.b0), fx, row_y);
      __mmask16 scalar = 0;
      const __m512 x = map_coordinates(x_out, width, fill, scalar);
      const __m512 y = map_coordinates(y_out, height, fill, scalar);
      const __m512 x0 =
          _mm512_maskz_roundscale_ps(0xFFFF, x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const __m512 y0 =
          _mm512_maskz_roundscale_ps(0xFFFF, y, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const __m512i ix = _mm512_maskz_cvttps_epi32(0xFFFF, x0),
                    iy = _mm512_maskz_cvttps_epi32(0xFFFF, y0);
      const __m512i ix1 = _mm512_add_epi32(ix, one), iy1 = _mm512_add_epi32(iy, one);
      // Unsigned comparisons: a negative index (or a far coordinate's INT_MIN) is outside.
      const __mmask16 gather = valid & ~scalar;
      const __mmask16 x0_in = _mm512_cmplt_epu32_mask(ix, w),
                      x1_in = _mm512_cmplt_epu32_mask(ix1, w);
      const __mmask16 y0_in = _mm512_cmplt_epu32_mask(iy, h),
                      y1_in = _mm512_cmplt_epu32_mask(iy1, h);
      const __m512i at = _mm512_add_epi32(_mm512_mullo_epi32(iy, w), ix);
      const __m512i below = _mm512_add_epi32(at, w);
      const __m512 p00 = _mm512_mask_i32gather_ps(fill_lanes, gather & y0_in & x0_in, at, in, 4);
      const __m512 p01 = _mm512_mask_i32gather_ps(fill_lanes, gather & y0_in & x1_in,
                                                  _mm512_add_epi32(at, one), in, 4);
      const __m512 p10 = _mm512_mask_i32gather_ps(fill_lanes, gather & y1_in & x0_in, below, in, 4);
      const __m512 p11 = _mm512_mask_i32gather_ps(fill_lanes, gather & y1_in & x1_in,
                                                  _mm512_add_epi32(below, one), in, 4);
      const __m512 one_f = _mm512_set1_ps(1);
      const __m512 wx0 = _mm512_sub_ps(x, x0), wx1 = _mm512_sub_ps(_mm512_add_ps(x0, one_f), x);
      const __m512 wy0 = _mm512_sub_ps(y, y0), wy1 = _mm512_sub_ps(_mm512_add_ps(y0, one_f), y);
      const __m512 top = _mm512_fmadd_ps(wx1, p00, _mm512_mul_ps(wx0, p01));
      const __m512 bottom = _mm512_fmadd_ps(wx1, p10, _mm512_mul_ps(wx0, p11));
      const __m512 value = _mm512_fmadd_ps(wy1, top, _mm512_mul_ps(wy0, bottom));
      float* const to = out + oy * width + ox;
      _mm512_mask_storeu_ps(to, gather, value);
      for (__mmask16 left = valid & scalar; left; left &= left - 1) {
        const int lane = __builtin_ctz(left);
        resample_pixel(x_out[lane], y_out[lane], in, to + lane, height, width, 1, fill, fill_value,
                       Interpolation::kBilinear);
      }
    }
  }
}
#endif

}  // namespace

void affine_resample(const AffineTransform& t, const float* in, float* out, int64_t height,
                     int64_t width, int64_t channels, FillMode fill, float fill_value,
                     Interpolation interpolation) {
  const bool bilinear = interpolation == Interpolation::kBilinear;
#ifdef __AVX512F__
  // An axis of one pixel maps every coordinate to 0 (map_coordinate), which the vector path
  // leaves to the scalar one.
  if (channels == 1 && bilinear && width > 1 && height > 1)
    return resample_grey_bilinear(t, in, out, height, width, fill, fill_value);
#endif
  const auto run = channels == 1   ? (bilinear ? &resample<1, true> : &resample<1, false>)
                   : channels == 3 ? (bilinear ? &resample<3, true> : &resample<3, false>)
                                   : (bilinear ? &resample<0, true> : &resample<0, false>);
  run(t, in, out, height, width, channels, fill, fill_value, interpolation);
}

}  // namespace ddp
