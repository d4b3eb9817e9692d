#pragma once
// Note [augmentation]: Keras' RandomFlip, RandomTranslation (interpolation "nearest"),
// RandomRotation and RandomZoom for the training images, as `data.train.augment`, applied in that
// order as a keras.Sequential of the four would. Each training sample, as its batch is gathered, is
// flipped, shifted by whole pixels, rotated and zoomed (Note [affine resampling]) by draws from
// (seed, epoch, its position in the epoch's order): the draws are the sample's whatever rank
// gathers it, so N ranks train what one does (invariant 1), and a resumed run draws what the
// uninterrupted one does (invariant 3), as dropout's masks (Note [dropout mask]). Pixels from
// outside the image are filled as Keras' fill_mode says. Evaluation sees the images as they are.

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "core/shape.h"
#include "data/affine_resample.h"

namespace ddp {

class ConfigNode;

struct AugmentConfig {
  bool flip_horizontal = false;  // random_flip: horizontal, vertical, horizontal_and_vertical
  bool flip_vertical = false;
  double height_factor = 0;  // random_translation: [height_factor, width_factor], each in [0, 1)
  double width_factor = 0;
  // Keras' RandomTranslation layer (Note [augmentation layers]): shifts drawn as real numbers from
  // [lower, upper] x the image's height and width and resampled through this interpolation;
  // unset: the whole-pixel shifts of height_factor and width_factor.
  std::optional<std::string> translation_interpolation{};
  std::array<double, 2> translate_height{0, 0};
  std::array<double, 2> translate_width{0, 0};
  // random_rotation: angles drawn from [lower, upper], in fractions of a full turn.
  std::array<double, 2> rotation{0, 0};
  // random_zoom: zooms of 1 + a draw from [lower, upper] (above 1: zoomed out); the width takes
  // the height's zoom unless it has a range of its own.
  std::array<double, 2> zoom_height{0, 0};
  std::optional<std::array<double, 2>> zoom_width{};
  // Keras' RandomContrast and RandomBrightness layers (Note [augmentation layers]), after the
  // transforms: each image's channels moved from their means by a factor drawn from `contrast`,
  // then shifted by a draw from `brightness` times the width of its value range, each clipped to
  // its value range (the images' values as the data hold them).
  std::optional<std::array<double, 2>> contrast{};  // Keras' (lower, upper): [1 - lower, 1 + upper]
  std::array<double, 2> contrast_values{0, 255};
  std::optional<std::array<double, 2>> brightness{};  // fractions of the value range
  std::array<double, 2> brightness_values{0, 255};
  std::string interpolation = "bilinear";  // of rotations and zooms; Keras' default; nearest
  std::string fill_mode = "reflect";       // Keras' default; constant, nearest, wrap
  float fill_value = 0;                    // fill_mode: constant

  bool enabled() const {
    const auto range = [](const std::array<double, 2>& r) { return r[0] != 0 || r[1] != 0; };
    return flip_horizontal || flip_vertical || height_factor > 0 || width_factor > 0 ||
           range(translate_height) || range(translate_width) || contrast || brightness ||
           range(rotation) || range(zoom_height) || (zoom_width && range(*zoom_width));
  }
};

// Reads `data.train.augment`.
AugmentConfig parse_augment(ConfigNode node);
// Keras' factor `key` of RandomTranslation, RandomRotation and RandomZoom: a number f for
// [-|f|, |f|], or [lower, upper]; each in [-1, 1] (open at -1 where `minus_one` is false: a zoom
// of 0).
std::array<double, 2> parse_factor_range(ConfigNode& node, const std::string& key, bool minus_one);

// One sample's draws: flips, then the shift by (rows, columns) pixels (positive: down, right),
// then the rotation (in turns) and the zooms.
struct AugmentDraw {
  bool flip_horizontal = false, flip_vertical = false;
  int64_t shift_rows = 0, shift_cols = 0;
  float shift_down = 0, shift_right = 0;  // translation_interpolation's, in pixels
  float rotation = 0;
  float zoom_height = 1, zoom_width = 1;
  float contrast = 1, brightness = 0;  // brightness: added, in the images' values
  bool clips = false;                  // contrast or brightness is on: the values are clipped

  bool changes_nothing() const {
    return !flip_horizontal && !flip_vertical && shift_rows == 0 && shift_cols == 0 &&
           shift_down == 0 && shift_right == 0 && rotation == 0 && zoom_height == 1 &&
           zoom_width == 1 && !clips;
  }
};

class Augmenter {
 public:
  // `image`: one sample's shape, (height, width) or (height, width, channels); throws
  // std::invalid_argument naming it when it is neither.
  Augmenter(const AugmentConfig& config, const Shape& image);

  // The draws of the sample at `position` of an epoch whose draws derive from `epoch_seed`.
  AugmentDraw draw(uint64_t epoch_seed, int64_t position) const;
  // out = in (one sample) flipped, shifted, rotated and zoomed as `draw` says; in and out must not
  // overlap.
  void apply(const AugmentDraw& draw, const float* in, float* out) const;
  // "augmentation: random_flip horizontal, random_translation up to 2 x 2 pixels, random_rotation
  // -36 to 36 degrees (bilinear, fill_mode reflect)"
  std::string describe() const;
  // Augments `rows` consecutive samples in place, the first at `first_position`.
  void apply_to_batch(uint64_t epoch_seed, int64_t first_position, float* samples,
                      int64_t rows) const;

 private:
  // Where output index i (of n) reads from after a shift by `shift`: an index in [0, n), or -1
  // for fill_mode constant outside the image.
  int64_t source_index(int64_t i, int64_t shift, int64_t n) const;
  void flip_and_shift(const AugmentDraw& draw, const float* in, float* out) const;
  // Keras' RandomContrast, then RandomBrightness, on the image in place.
  void adjust_values(const AugmentDraw& draw, float* image) const;
  // image = image resampled through `t`.
  void resample_in_place(const AffineTransform& t, Interpolation interpolation, float* image) const;

  AugmentConfig config_;
  FillMode fill_;
  Interpolation interpolation_;              // of rotations and zooms
  Interpolation translation_interpolation_;  // of translation_interpolation's shifts
  int64_t height_, width_, channels_;
  int64_t max_rows_, max_cols_;  // the largest shifts: factor x size, rounded down
};

}  // namespace ddp
