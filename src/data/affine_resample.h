#pragma once
// Note [affine resampling]: Keras' image.affine_transform as its default backend, TensorFlow,
// computes it (ImageProjectiveTransformV3), for RandomRotation and RandomZoom. Output pixel (x, y)
// reads the input at x' = a0 x + a1 y + a2, y' = b0 x + b1 y + b2 (float32). The fill mode first
// maps a coordinate outside the image back in (reflect, wrap and nearest, each then clamped to
// [0, n - 1]; constant leaves it), then the value is read bilinearly (the four neighbours by
// distance, a neighbour outside the image reading fill_value) or from the nearest pixel (ties
// away from zero). Keras' other backends round nearest ties to even, and their reflect and wrap
// differ for coordinates more than a pixel outside; TensorFlow is the one followed here, checked
// by tests/interop/keras_reference.py.

#include <cstdint>

namespace ddp {

enum class FillMode { kReflect, kConstant, kNearest, kWrap };
enum class Interpolation { kBilinear, kNearest };

// The output-to-input map of one image; Keras' transform [a0 a1 a2 b0 b1 b2 0 0].
struct AffineTransform {
  float a0 = 1, a1 = 0, a2 = 0, b0 = 0, b1 = 1, b2 = 0;
};

// Keras' RandomRotation matrix: a rotation by `turns` of a full turn about the image's centre.
AffineTransform rotation_transform(double turns, int64_t height, int64_t width);
// Keras' RandomTranslation matrix: the image moved `down` and `right` pixels (fractions resample).
AffineTransform translation_transform(float down, float right);
// Keras' RandomZoom matrix: input coordinates scaled by the zooms about the centre, so a zoom
// above 1 shows more of the image, smaller (zooms out).
AffineTransform zoom_transform(float zoom_height, float zoom_width, int64_t height, int64_t width);

// Where coordinate `c` of an axis of `n` pixels reads after the fill mode (TensorFlow's
// MapCoordinate); whole numbers stay whole.
float map_coordinate(float c, int64_t n, FillMode fill);

// out = in (one (height, width, channels) image) resampled through `t`; in and out must not
// overlap.
void affine_resample(const AffineTransform& t, const float* in, float* out, int64_t height,
                     int64_t width, int64_t channels, FillMode fill, float fill_value,
                     Interpolation interpolation);

}  // namespace ddp
