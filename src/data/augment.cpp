#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/rng.h"
#include "train/config_reader.h"

namespace ddp {

AugmentConfig parse_augment(ConfigNode node) {
  AugmentConfig c;
  if (node.has("random_flip")) {
    const std::string flip =
        node.choice("random_flip", {"horizontal", "vertical", "horizontal_and_vertical"});
    c.flip_horizontal = flip != "vertical";
    c.flip_vertical = flip != "horizontal";
  }
  if (node.has("random_translation")) {
    const auto factors = node.require<std::vector<double>>("random_translation");
    if (factors.size() != 2) node.fail("random_translation", "give [height_factor, width_factor]");
    for (const double f : factors)
      if (!(f >= 0 && f < 1))
        node.fail("random_translation", "each factor must be in [0, 1), got " + show_number(f));
    c.height_factor = factors[0];
    c.width_factor = factors[1];
  }
  c.fill_mode = node.choice("fill_mode", {"reflect", "constant", "nearest", "wrap"}, "reflect");
  c.fill_value = static_cast<float>(node.get("fill_value", 0.0));
  if (!c.enabled()) node.fail("", "give random_flip or random_translation (or drop augment)");
  node.finish();
  return c;
}

Augmenter::Augmenter(const AugmentConfig& config, const Shape& image)
    : config_(config),
      fill_(config.fill_mode == "constant"  ? Fill::kConstant
            : config.fill_mode == "nearest" ? Fill::kNearest
            : config.fill_mode == "wrap"    ? Fill::kWrap
                                            : Fill::kReflect) {
  if (image.rank() != 2 && image.rank() != 3)
    throw std::invalid_argument(
        "augmentation needs image samples, (height, width) or (height, "
        "width, channels); these are " +
        image.str());
  height_ = image[0];
  width_ = image[1];
  channels_ = image.rank() == 3 ? image[2] : 1;
  max_rows_ = static_cast<int64_t>(std::floor(config.height_factor * static_cast<double>(height_)));
  max_cols_ = static_cast<int64_t>(std::floor(config.width_factor * static_cast<double>(width_)));
}

AugmentDraw Augmenter::draw(uint64_t epoch_seed, int64_t position) const {
  Rng rng(derive_seed(epoch_seed, static_cast<uint64_t>(position)));
  AugmentDraw d;
  // Every draw is taken whether used or not, so each depends only on the seed and position.
  d.flip_horizontal = (rng.next() >> 63) != 0 && config_.flip_horizontal;
  d.flip_vertical = (rng.next() >> 63) != 0 && config_.flip_vertical;
  d.shift_rows =
      static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * max_rows_ + 1))) - max_rows_;
  d.shift_cols =
      static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * max_cols_ + 1))) - max_cols_;
  return d;
}

int64_t Augmenter::source_index(int64_t i, int64_t shift, int64_t n) const {
  const int64_t s = i - shift;
  if (s >= 0 && s < n) return s;
  switch (fill_) {
    case Fill::kConstant:
      return -1;
    case Fill::kNearest:
      return std::clamp<int64_t>(s, 0, n - 1);
    case Fill::kWrap:
      return ((s % n) + n) % n;
    case Fill::kReflect:
      break;
  }
  // Keras' and SciPy's reflect: d c b a | a b c d | d c b a, a period of 2n.
  const int64_t m = ((s % (2 * n)) + 2 * n) % (2 * n);
  return m < n ? m : 2 * n - 1 - m;
}

void Augmenter::apply(const AugmentDraw& draw, const float* in, float* out) const {
  // The source row of each output row and the source column of each output column: the shift on
  // the flipped image.
  thread_local std::vector<int64_t> rows, cols;
  const auto sources = [this](std::vector<int64_t>& to, int64_t n, int64_t shift, bool flip) {
    to.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t s = source_index(i, shift, n);
      to[static_cast<size_t>(i)] = s >= 0 && flip ? n - 1 - s : s;
    }
  };
  sources(rows, height_, draw.shift_rows, draw.flip_vertical);
  sources(cols, width_, draw.shift_cols, draw.flip_horizontal);
  for (int64_t y = 0; y < height_; ++y) {
    const int64_t sy = rows[static_cast<size_t>(y)];
    if (channels_ == 1 && sy >= 0) {  // a grey image's row: one gather
      const float* const from = in + sy * width_;
      for (int64_t x = 0; x < width_; ++x) {
        const int64_t sx = cols[static_cast<size_t>(x)];
        out[y * width_ + x] = sx < 0 ? config_.fill_value : from[sx];
      }
      continue;
    }
    for (int64_t x = 0; x < width_; ++x) {
      const int64_t sx = cols[static_cast<size_t>(x)];
      float* const to = out + (y * width_ + x) * channels_;
      if (sy < 0 || sx < 0) {
        std::fill(to, to + channels_, config_.fill_value);
      } else {
        std::copy_n(in + (sy * width_ + sx) * channels_, channels_, to);
      }
    }
  }
}

std::string Augmenter::describe() const {
  const bool flip = config_.flip_horizontal || config_.flip_vertical;
  const std::string flips = !flip                      ? ""
                            : !config_.flip_vertical   ? "horizontal"
                            : !config_.flip_horizontal ? "vertical"
                                                       : "horizontal_and_vertical";
  std::string out = "augmentation:";
  if (flip) out += " random_flip " + flips + (max_rows_ + max_cols_ > 0 ? "," : "");
  if (max_rows_ + max_cols_ > 0)
    out += " random_translation up to " + std::to_string(max_rows_) + " x " +
           std::to_string(max_cols_) + " pixels (fill_mode " + config_.fill_mode + ")";
  return out;
}

void Augmenter::apply_to_batch(uint64_t epoch_seed, int64_t first_position, float* samples,
                               int64_t rows) const {
  const int64_t size = height_ * width_ * channels_;
  thread_local std::vector<float> original;
  original.resize(static_cast<size_t>(size));
  for (int64_t r = 0; r < rows; ++r) {
    float* const sample = samples + r * size;
    const AugmentDraw d = draw(epoch_seed, first_position + r);
    if (!d.flip_horizontal && !d.flip_vertical && d.shift_rows == 0 && d.shift_cols == 0) continue;
    std::copy_n(sample, size, original.data());
    apply(d, original.data(), sample);
  }
}

}  // namespace ddp
