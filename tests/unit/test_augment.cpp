// Note [augmentation]: flips and whole-pixel shifts with Keras' fill modes on small images worked
// out by hand, draws that depend only on (seed, position) and cover their range, and config
// errors naming the key.

#include <gtest/gtest.h>

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
  // Flipped first, then shifted: d c b a, then one to the right.
  EXPECT_EQ(row_after(with_fill("constant", 9), shift(0, true)), (std::vector<float>{4, 3, 2, 1}));
  EXPECT_EQ(row_after(with_fill("constant", 9), shift(1, true)), (std::vector<float>{9, 4, 3, 2}));
  EXPECT_EQ(row_after(with_fill("reflect"), shift(1, true)), (std::vector<float>{4, 4, 3, 2}));
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
            "aug.yaml: data.train.augment: give random_flip or random_translation (or drop "
            "augment)");
  EXPECT_EQ(config_error("{random_flip: vertical}"), "no ConfigError");
  EXPECT_THROW(Augmenter(AugmentConfig{.flip_horizontal = true}, Shape{784}),
               std::invalid_argument);
}

}  // namespace
}  // namespace ddp
