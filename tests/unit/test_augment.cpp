// Note [augmentation], Note [affine resampling]: flips, whole-pixel shifts, zooms and rotations
// with Keras' fill modes and interpolations on small images worked out by hand (the same cases
// run through Keras itself in tests/interop/keras_reference.py), bilinear resampling exact on
// linear images, draws that depend only on (seed, position) and cover their range, and config
// errors naming the key.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/augment.h"
#include "train/config.h"
#include "train/config_reader.h"

namespace ddp {
namespace {

AugmentConfig with_fill(const std::string& mode, float value = 0) {
  AugmentConfig c;
  c.width_factor = 0.5;
  c.fill_mode = mode;
  c.fill_value = value;
  return c;
}

// One row of four pixels, a b c d = 1 2 3 4, through `draw`.
std::vector<float> row_after(const AugmentConfig& config, AugmentDraw draw) {
  const Augmenter augmenter(config, Shape{1, 4});
  const std::vector<float> in = {1, 2, 3, 4};
  std::vector<float> out(4);
  augmenter.apply(draw, in.data(), out.data());
  return out;
}

AugmentDraw shift(int64_t cols, bool flip = false) {
  return {.flip_horizontal = flip, .flip_vertical = false, .shift_rows = 0, .shift_cols = cols};
}

TEST(Augment, ShiftsFillAsKerasFillModes) {
  // Keras' fill modes for a b c d: reflect d c b a | a b c d | d c b a, constant k k k k |
  // a b c d | k k k k, nearest a a a a | a b c d | d d d d, wrap a b c d | a b c d | a b c d.
  EXPECT_EQ(row_after(with_fill("reflect"), shift(2)), (std::vector<float>{2, 1, 1, 2}));
  EXPECT_EQ(row_after(with_fill("reflect"), shift(-1)), (std::vector<float>{2, 3, 4, 4}));
  EXPECT_EQ(row_after(with_fill("constant", 9), shift(1)), (std::vector<float>{9, 1, 2, 3}));
  EXPECT_EQ(row_after(with_fill("constant", 9), shift(-2)), (std::vector<float>{3, 4, 9, 9}));
  EXPECT_EQ(row_after(with_fill("nearest"), shift(2)), (std::vector<float>{1, 1, 1, 2}));
  EXPECT_EQ(row_after(with_fill("wrap"), shift(1)), (std::vector<float>{4, 1, 2, 3}));
  EXPECT_EQ(row_after(with_fill("wrap"), shift(0)), (std::vector<float>{1, 2, 3, 4}));
  // TensorFlow's wrap steps by n - 1 (Note [affine resampling]), which shows from n - 1 pixels on.
  EXPECT_EQ(row_after(with_fill("wrap"), shift(3)), (std::vector<float>{4, 3, 4, 1}));
  EXPECT_EQ(row_after(with_fill("wrap"), shift(-3)), (std::vector<float>{4, 1, 2, 1}));
  EXPECT_EQ(row_after(with_fill("reflect"), shift(3)), (std::vector<float>{3, 2, 1, 1}));
  // Flipped first, then shifted: d c b a, then one to the right.
  EXPECT_EQ(row_after(with_fill("constant", 9), shift(0, true)), (std::vector<float>{4, 3, 2, 1}));
  EXPECT_EQ(row_after(with_fill("constant", 9), shift(1, true)), (std::vector<float>{9, 4, 3, 2}));
  EXPECT_EQ(row_after(with_fill("reflect"), shift(1, true)), (std::vector<float>{4, 4, 3, 2}));
}

AugmentDraw zoom_width(float zoom) { return {.zoom_width = zoom}; }

// Zoomed out by 2 along the row: output x reads input 2x - 1.5 (-1.5, 0.5, 2.5, 4.5), so the ends
// come from outside the image, each fill mode its own way (coordinates mapped first, then read).
TEST(Augment, ZoomsResampleAsKerasFillModesAndInterpolationsSay) {
  const auto zoomed = [](const std::string& fill, const std::string& interpolation, float zoom) {
    AugmentConfig c = with_fill(fill, 9);
    c.interpolation = interpolation;
    return row_after(c, zoom_width(zoom));
  };
  using V = std::vector<float>;
  EXPECT_EQ(zoomed("constant", "bilinear", 2), (V{9, 1.5, 3.5, 9}));
  EXPECT_EQ(zoomed("reflect", "bilinear", 2), (V{1.5, 1.5, 3.5, 3.5}));  // -1.5 -> 0.5, 4.5 -> 2.5
  EXPECT_EQ(zoomed("nearest", "bilinear", 2), (V{1, 1.5, 3.5, 4}));
  EXPECT_EQ(zoomed("wrap", "bilinear", 2), (V{3.5, 1.5, 3.5, 1.5}));  // -1.5 -> 2.5, 4.5 -> 0.5
  // Nearest rounds ties away from zero, after the fill mode's mapping.
  EXPECT_EQ(zoomed("constant", "nearest", 2), (V{9, 2, 4, 9}));
  EXPECT_EQ(zoomed("reflect", "nearest", 2), (V{2, 2, 4, 4}));
  EXPECT_EQ(zoomed("wrap", "nearest", 2), (V{4, 2, 4, 2}));
  // Zoomed in by 2: input 0.75, 1.25, 1.75, 2.25, all inside.
  EXPECT_EQ(zoomed("constant", "bilinear", 0.5), (V{1.75, 2.25, 2.75, 3.25}));
  EXPECT_EQ(zoomed("constant", "nearest", 0.5), (V{2, 2, 3, 3}));
}

// Keras' RandomTranslation (Note [augmentation layers]): shifts of fractions of a pixel, drawn as
// [lower, upper] x the size says, resampled: half a pixel right, output x reads input x - 0.5.
TEST(Augment, SubPixelShiftsResampleAsKerasRandomTranslation) {
  const auto shifted = [](const std::string& fill, const std::string& interpolation, bool rows) {
    AugmentConfig c;
    c.fill_mode = fill;
    c.fill_value = 9;
    c.translation_interpolation = interpolation;
    (rows ? c.translate_height : c.translate_width) = {0.125, 0.125};  // of 4 pixels
    const Augmenter augmenter(c, rows ? Shape{4, 1} : Shape{1, 4});
    const AugmentDraw draw = augmenter.draw(1, 0);
    EXPECT_EQ(rows ? draw.shift_down : draw.shift_right, 0.5f);
    const std::vector<float> in = {1, 2, 3, 4};
    std::vector<float> out(4);
    augmenter.apply(draw, in.data(), out.data());
    return out;
  };
  using V = std::vector<float>;
  for (const bool rows : {false, true}) {
    EXPECT_EQ(shifted("constant", "bilinear", rows), (V{5, 1.5, 2.5, 3.5})) << rows;
    EXPECT_EQ(shifted("constant", "nearest", rows), (V{9, 2, 3, 4})) << rows;  // ties away from 0
    EXPECT_EQ(shifted("nearest", "bilinear", rows), (V{1, 1.5, 2.5, 3.5})) << rows;
  }
}

TEST(Augment, SubPixelShiftDrawsCoverTheirRange) {
  AugmentConfig c;
  c.translation_interpolation = "bilinear";
  c.translate_height = {-0.25, 0.5};  // of 8 rows: [-2, 4] pixels
  c.translate_width = {0.1, 0.1};
  const Augmenter augmenter(c, Shape{8, 8});
  float lowest = 10, highest = -10;
  bool fractional = false;
  for (int64_t position = 0; position < 200; ++position) {
    const AugmentDraw d = augmenter.draw(11, position);
    EXPECT_EQ(d.shift_down, augmenter.draw(11, position).shift_down);
    EXPECT_GE(d.shift_down, -2);
    EXPECT_LE(d.shift_down, 4);
    EXPECT_FLOAT_EQ(d.shift_right, 0.8f);
    EXPECT_EQ(d.shift_rows + d.shift_cols, 0);  // no whole-pixel shifts beside them
    lowest = std::min(lowest, d.shift_down);
    highest = std::max(highest, d.shift_down);
    fractional |= d.shift_down != std::round(d.shift_down);
  }
  EXPECT_LT(lowest, -1.8);
  EXPECT_GT(highest, 3.8);
  EXPECT_TRUE(fractional);
}

// Keras' RandomContrast and RandomBrightness (Note [augmentation layers]) on a 2 x 2 image of two
// channels (0 10 20 30, mean 15, and 100 100 100 104, mean 101): each channel moved from its own
// mean by the factor, clipped to the value range; then shifted by the fraction of the range's
// width, clipped. Factor ranges of one value, as keras_reference asks Keras.
TEST(Augment, ContrastAndBrightnessAsKerasComputeThem) {
  const std::vector<float> in = {0, 100, 10, 100, 20, 100, 30, 104};
  const auto adjusted = [&in](const AugmentConfig& c) {
    const Augmenter augmenter(c, Shape{2, 2, 2});
    std::vector<float> out(8);
    augmenter.apply(augmenter.draw(3, 0), in.data(), out.data());
    return out;
  };
  using V = std::vector<float>;
  AugmentConfig contrast;
  contrast.contrast = {{-0.5, 0.5}};  // factors [1.5, 1.5]
  contrast.contrast_values = {0, 110};
  EXPECT_EQ(adjusted(contrast), (V{0, 99.5, 7.5, 99.5, 22.5, 99.5, 37.5, 105.5}));
  AugmentConfig brightness;
  brightness.brightness = {{0.1, 0.1}};  // 25.5 of [0, 255]
  EXPECT_EQ(adjusted(brightness), (V{25.5, 125.5, 35.5, 125.5, 45.5, 125.5, 55.5, 129.5}));
  brightness.brightness = {{0.5, 0.5}};
  brightness.brightness_values = {0, 110};
  EXPECT_EQ(adjusted(brightness), (V{55, 110, 65, 110, 75, 110, 85, 110}));
  // Both: contrast first, then brightness.
  contrast.brightness = {{-0.1, -0.1}};  // -11 of [0, 110]
  contrast.brightness_values = {0, 110};
  EXPECT_EQ(adjusted(contrast), (V{0, 88.5, 0, 88.5, 11.5, 88.5, 26.5, 94.5}));
  // The factors' draws cover [1 - lower, 1 + upper], the shifts their fraction of the range.
  contrast.contrast = {{0.2, 0.3}};
  contrast.brightness = {{-0.25, 0.5}};
  const Augmenter augmenter(contrast, Shape{2, 2, 2});
  float low = 10, high = 0, darkest = 100, brightest = -100;
  for (int64_t position = 0; position < 300; ++position) {
    const AugmentDraw d = augmenter.draw(4, position);
    EXPECT_TRUE(d.clips);
    low = std::min(low, d.contrast);
    high = std::max(high, d.contrast);
    darkest = std::min(darkest, d.brightness);
    brightest = std::max(brightest, d.brightness);
  }
  EXPECT_GE(low, 0.8f);
  EXPECT_LT(low, 0.82f);
  EXPECT_LE(high, 1.3f);
  EXPECT_GT(high, 1.28f);
  EXPECT_GE(darkest, -27.5f);
  EXPECT_LT(darkest, -26.5f);
  EXPECT_LE(brightest, 55);
  EXPECT_GT(brightest, 54);
}

// A quarter turn about the centre of a 3 x 3 image of two channels: output (y, x) is input
// (x, 2 - y), both channels.
TEST(Augment, RotationTurnsAboutTheCentre) {
  AugmentConfig c = with_fill("constant", -1);
  const Augmenter augmenter(c, Shape{3, 3, 2});
  std::vector<float> in;
  for (int p = 0; p < 9; ++p) in.insert(in.end(), {float(p), 100.0f + p});
  std::vector<float> out(18);
  augmenter.apply({.rotation = 0.25f}, in.data(), out.data());
  const std::vector<float> want = {2, 5, 8, 1, 4, 7, 0, 3, 6};
  for (int p = 0; p < 9; ++p) {
    EXPECT_NEAR(out[2 * p], want[p], 1e-5) << p;
    EXPECT_NEAR(out[2 * p + 1], 100 + want[p], 1e-4) << p;
  }
  // Half a turn: the image upside down and back to front.
  augmenter.apply({.rotation = -0.5f}, in.data(), out.data());
  for (int p = 0; p < 9; ++p) EXPECT_NEAR(out[2 * p], 8 - p, 1e-5) << p;
}

// Bilinear interpolation reproduces a linear image: wherever a rotated and zoomed pixel reads
// from inside the image its value is the linear function at the point it reads, which is
// computed here from the rotation about the centre, not from the code's matrix.
TEST(Augment, RotationAndZoomAreExactOnALinearImage) {
  constexpr int64_t kSize = 9;
  AugmentConfig c = with_fill("constant", -1000);
  const Augmenter augmenter(c, Shape{kSize, kSize});
  std::vector<float> in(kSize * kSize), out(kSize * kSize);
  for (int64_t y = 0; y < kSize; ++y)
    for (int64_t x = 0; x < kSize; ++x) in[y * kSize + x] = float(x + 10 * y);
  const double turns = 0.04, zoom_h = 0.9, zoom_w = 1.1, centre = (kSize - 1) / 2.0;
  augmenter.apply({.rotation = float(turns)}, in.data(), out.data());
  const double theta = 2 * std::numbers::pi * turns;
  int inside = 0;
  for (int64_t y = 0; y < kSize; ++y) {
    for (int64_t x = 0; x < kSize; ++x) {
      const double dx = x - centre, dy = y - centre;
      const double sx = std::cos(theta) * dx - std::sin(theta) * dy + centre;
      const double sy = std::sin(theta) * dx + std::cos(theta) * dy + centre;
      if (sx < 0 || sx > kSize - 1 || sy < 0 || sy > kSize - 1) continue;
      ++inside;
      EXPECT_NEAR(out[y * kSize + x], sx + 10 * sy, 1e-3) << y << "," << x;
    }
  }
  EXPECT_GT(inside, 60);
  // The zoom scales the coordinates it reads about the centre; the columns that read from past
  // the edges are (partly) filled.
  augmenter.apply({.rotation = 0, .zoom_height = float(zoom_h), .zoom_width = float(zoom_w)},
                  in.data(), out.data());
  for (int64_t y = 0; y < kSize; ++y) {
    for (int64_t x = 0; x < kSize; ++x) {
      const double sx = (x - centre) * zoom_w + centre, sy = (y - centre) * zoom_h + centre;
      if (sx > kSize - 1 || sx < 0) {
        EXPECT_LT(out[y * kSize + x], -100) << "filled " << y << "," << x;
        continue;
      }
      EXPECT_NEAR(out[y * kSize + x], sx + 10 * sy, 1e-3) << y << "," << x;
    }
  }
}

// An image of three channels resamples as three grey images would, bit for bit (Note [bilinear
// bits]), edges and every fill mode included.
TEST(Augment, ChannelsResampleAsSeparateImages) {
  for (const int64_t width : {7, 20}) {
    const int64_t pixels = 9 * width;
    for (const std::string fill : {"reflect", "wrap", "constant", "nearest"}) {
      for (const std::string interpolation : {"bilinear", "nearest"}) {
        AugmentConfig c = with_fill(fill, 0.25f);
        c.interpolation = interpolation;
        const Augmenter colour(c, Shape{9, width, 3}), grey(c, Shape{9, width});
        std::vector<float> in(3 * pixels), out(3 * pixels);
        for (size_t i = 0; i < in.size(); ++i) in[i] = std::sin(0.37f * float(i));
        const AugmentDraw d = {.rotation = 0.07f, .zoom_height = 1.3f, .zoom_width = 0.8f};
        colour.apply(d, in.data(), out.data());
        for (int64_t channel = 0; channel < 3; ++channel) {
          std::vector<float> one(pixels), resampled(pixels);
          for (int64_t p = 0; p < pixels; ++p) one[p] = in[3 * p + channel];
          grey.apply(d, one.data(), resampled.data());
          for (int64_t p = 0; p < pixels; ++p)
            ASSERT_EQ(out[3 * p + channel], resampled[p])
                << width << " " << fill << " " << interpolation << " " << p;
        }
      }
    }
  }
}

// Images of (height, width, channels): a pixel's channels move together.
TEST(Augment, RowsAndChannelsMoveTogether) {
  AugmentConfig c = with_fill("constant", -1);
  c.height_factor = 0.5;
  const Augmenter augmenter(c, Shape{2, 3, 2});
  // Pixel (y, x) holds channels 10 (y * 3 + x) and 10 (y * 3 + x) + 1.
  std::vector<float> in;
  for (int p = 0; p < 6; ++p) in.insert(in.end(), {10.0f * p, 10.0f * p + 1});
  std::vector<float> out(12);
  // Flipped upside down, then down by one row: row 0 is filled, row 1 is the old row 1 (flipped
  // to the top, then shifted down).
  augmenter.apply(
      {.flip_horizontal = false, .flip_vertical = true, .shift_rows = 1, .shift_cols = 0},
      in.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{-1, -1, -1, -1, -1, -1, 30, 31, 40, 41, 50, 51}));
  // Left-right, no shift: columns reversed within each row.
  augmenter.apply(
      {.flip_horizontal = true, .flip_vertical = false, .shift_rows = 0, .shift_cols = 0},
      in.data(), out.data());
  EXPECT_EQ(out, (std::vector<float>{20, 21, 10, 11, 0, 1, 50, 51, 40, 41, 30, 31}));
}

TEST(Augment, DrawsDependOnlyOnSeedAndPositionAndCoverTheirRange) {
  AugmentConfig c;
  c.flip_horizontal = true;
  c.height_factor = 0.1;  // 28 rows: up to 2
  c.width_factor = 0.2;   // 28 columns: up to 5
  const Augmenter augmenter(c, Shape{28, 28});
  int flipped = 0, moved_by_another_seed = 0;
  std::set<int64_t> rows, cols;
  constexpr int kDraws = 4000;
  for (int p = 0; p < kDraws; ++p) {
    const AugmentDraw d = augmenter.draw(7, p);
    const AugmentDraw again = augmenter.draw(7, p);
    EXPECT_EQ(d.flip_horizontal, again.flip_horizontal);
    EXPECT_EQ(d.shift_cols, again.shift_cols);
    EXPECT_FALSE(d.flip_vertical);  // not configured
    flipped += d.flip_horizontal;
    rows.insert(d.shift_rows);
    cols.insert(d.shift_cols);
    const AugmentDraw other = augmenter.draw(8, p);
    moved_by_another_seed += other.shift_cols != d.shift_cols || other.shift_rows != d.shift_rows;
  }
  EXPECT_NEAR(flipped, kDraws / 2, kDraws / 20);
  EXPECT_EQ(rows, (std::set<int64_t>{-2, -1, 0, 1, 2}));
  EXPECT_EQ(cols, (std::set<int64_t>{-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5}));
  EXPECT_GT(moved_by_another_seed, kDraws * 8 / 10);
}

// Rotations and zooms are drawn uniformly from their ranges; the width's zoom is the height's
// unless it has a range of its own.
TEST(Augment, RotationAndZoomDrawsCoverTheirRanges) {
  AugmentConfig c;
  c.rotation = {-0.1, 0.2};
  c.zoom_height = {-0.3, 0.3};
  const Augmenter same_zoom(c, Shape{28, 28});
  c.zoom_width = {0.0, 0.5};
  const Augmenter own_width(c, Shape{28, 28});
  float low = 1, high = -1, zoom_low = 2, zoom_high = 0, width_low = 2, width_high = 0;
  int widths_differ = 0;
  for (int p = 0; p < 4000; ++p) {
    const AugmentDraw d = same_zoom.draw(5, p);
    EXPECT_EQ(d.zoom_width, d.zoom_height);
    low = std::min(low, d.rotation), high = std::max(high, d.rotation);
    zoom_low = std::min(zoom_low, d.zoom_height), zoom_high = std::max(zoom_high, d.zoom_height);
    const AugmentDraw w = own_width.draw(5, p);
    EXPECT_EQ(w.rotation, d.rotation);
    EXPECT_EQ(w.zoom_height, d.zoom_height);
    width_low = std::min(width_low, w.zoom_width), width_high = std::max(width_high, w.zoom_width);
    widths_differ += w.zoom_width != w.zoom_height;
  }
  EXPECT_GE(low, -0.1f);
  EXPECT_LT(low, -0.09f);
  EXPECT_LE(high, 0.2f);
  EXPECT_GT(high, 0.19f);
  EXPECT_GE(zoom_low, 0.7f);
  EXPECT_LT(zoom_low, 0.71f);
  EXPECT_LE(zoom_high, 1.3f);
  EXPECT_GT(zoom_high, 1.29f);
  EXPECT_GE(width_low, 1.0f);
  EXPECT_LT(width_low, 1.01f);
  EXPECT_GT(width_high, 1.49f);
  EXPECT_GT(widths_differ, 3900);
}

// apply_to_batch: each row as its own position's draw.
TEST(Augment, BatchRowsTakeTheirPositionsDraws) {
  AugmentConfig c = with_fill("wrap");
  c.flip_horizontal = true;
  const Augmenter augmenter(c, Shape{1, 4});
  std::vector<float> batch = {1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4};
  augmenter.apply_to_batch(3, 100, batch.data(), 3);
  const std::vector<float> in = {1, 2, 3, 4};
  for (int r = 0; r < 3; ++r) {
    std::vector<float> want(4);
    augmenter.apply(augmenter.draw(3, 100 + r), in.data(), want.data());
    EXPECT_EQ(std::vector<float>(batch.begin() + 4 * r, batch.begin() + 4 * r + 4), want) << r;
  }
}

std::string config_error(const std::string& augment) {
  YAML::Node root = YAML::Load(R"(
data:
  train: {type: synthetic, samples: 10, features: 4, classes: 2}
model:
  layers: [{type: dense, units: 2, activation: softmax}]
loss: sparse_categorical_crossentropy
optimizer: {type: adam}
training: {epochs: 1, global_batch_size: 2}
)");
  root["data"]["train"]["augment"] = YAML::Load(augment);
  try {
    parse_config(root, "aug.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

TEST(Augment, ConfigErrorsNameTheKey) {
  EXPECT_EQ(config_error("{random_flip: sideways}"),
            "aug.yaml: data.train.augment.random_flip: unknown value 'sideways' (expected one of: "
            "horizontal, vertical, horizontal_and_vertical)");
  EXPECT_EQ(config_error("{random_translation: [0.1]}"),
            "aug.yaml: data.train.augment.random_translation: give [height_factor, width_factor]");
  EXPECT_EQ(config_error("{random_translation: [0.1, 1.5]}"),
            "aug.yaml: data.train.augment.random_translation: each factor must be in [0, 1), got "
            "1.5");
  EXPECT_EQ(config_error("{fill_mode: constant}"),
            "aug.yaml: data.train.augment: give random_flip, random_translation, random_rotation "
            "or random_zoom (or drop augment)");
  EXPECT_EQ(config_error("{random_rotation: 1.5}"),
            "aug.yaml: data.train.augment.random_rotation: must be in [-1, 1], got 1.5");
  EXPECT_EQ(config_error("{random_rotation: [0.1, 0.2, 0.3]}"),
            "aug.yaml: data.train.augment.random_rotation: give a number or [lower, upper], each "
            "in [-1, 1]");
  EXPECT_EQ(config_error("{random_zoom: [-1, 0.2]}"),
            "aug.yaml: data.train.augment.random_zoom: must be in (-1, 1], got -1");
  EXPECT_EQ(config_error("{random_zoom: {height_factor: 0.1, width_factor: 2}}"),
            "aug.yaml: data.train.augment.random_zoom.width_factor: must be in (-1, 1], got 2");
  EXPECT_EQ(config_error("{random_zoom: {width_factor: 0.1}}")
                .find("aug.yaml: data.train.augment.random_zoom.height_factor: "),
            0u);
  EXPECT_EQ(config_error("{random_rotation: 0.1, interpolation: cubic}"),
            "aug.yaml: data.train.augment.interpolation: unknown value 'cubic' (expected one of: "
            "bilinear, nearest)");
  EXPECT_EQ(config_error("{random_rotation: -0.1, random_zoom: {height_factor: [0.2, -0.1]}}"),
            "no ConfigError");
  EXPECT_EQ(config_error("{random_flip: vertical}"), "no ConfigError");
  EXPECT_THROW(Augmenter(AugmentConfig{.flip_horizontal = true}, Shape{784}),
               std::invalid_argument);
}

}  // namespace
}  // namespace ddp
