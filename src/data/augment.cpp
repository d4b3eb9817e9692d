#include "data/augment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/rng.h"
#include "train/config_reader.h"

namespace ddp {

namespace {

Interpolation interpolation_of(const std::string& name) {
  return name == "nearest" ? Interpolation::kNearest : Interpolation::kBilinear;
}

}  // namespace

std::array<double, 2> parse_factor_range(ConfigNode& node, const std::string& key, bool minus_one) {
  const std::string bounds = minus_one ? "[-1, 1]" : "(-1, 1]";
  const auto check = [&](double f) {
    if (!(f <= 1 && (f > -1 || (minus_one && f == -1))))
      node.fail(key, "must be in " + bounds + ", got " + show_number(f));
    return f;
  };
  if (!node.is_list(key)) {
    const double f = std::abs(check(node.require<double>(key)));
    return {-f, f};
  }
  const auto range = node.require<std::vector<double>>(key);
  if (range.size() != 2) node.fail(key, "give a number or [lower, upper], each in " + bounds);
  return {std::min(check(range[0]), check(range[1])), std::max(range[0], range[1])};
}

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
  if (node.has("random_rotation")) c.rotation = parse_factor_range(node, "random_rotation", true);
  if (node.is_map("random_zoom")) {
    ConfigNode zoom = node.child("random_zoom");
    c.zoom_height = parse_factor_range(zoom, "height_factor", false);
    if (zoom.has("width_factor")) c.zoom_width = parse_factor_range(zoom, "width_factor", false);
    zoom.finish();
  } else if (node.has("random_zoom")) {
    c.zoom_height = parse_factor_range(node, "random_zoom", false);
  }
  c.interpolation = node.choice("interpolation", {"bilinear", "nearest"}, "bilinear");
  c.fill_mode = node.choice("fill_mode", {"reflect", "constant", "nearest", "wrap"}, "reflect");
  c.fill_value = static_cast<float>(node.get("fill_value", 0.0));
  if (!c.enabled())
    node.fail("",
              "give random_flip, random_translation, random_rotation or random_zoom (or drop "
              "augment)");
  node.finish();
  return c;
}

Augmenter::Augmenter(const AugmentConfig& config, const Shape& image)
    : config_(config),
      fill_(config.fill_mode == "constant"  ? FillMode::kConstant
            : config.fill_mode == "nearest" ? FillMode::kNearest
            : config.fill_mode == "wrap"    ? FillMode::kWrap
                                            : FillMode::kReflect),
      interpolation_(interpolation_of(config.interpolation)),
      translation_interpolation_(interpolation_of(config.translation_interpolation.value_or(""))) {
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
  const auto uniform = [&rng](const std::array<double, 2>& range) {
    return rng.uniform(static_cast<float>(range[0]), static_cast<float>(range[1]));
  };
  if (config_.translation_interpolation) {  // Keras': a fraction of the size, in float32
    d.shift_down = uniform(config_.translate_height) * static_cast<float>(height_);
    d.shift_right = uniform(config_.translate_width) * static_cast<float>(width_);
  } else {
    d.shift_rows =
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * max_rows_ + 1))) - max_rows_;
    d.shift_cols =
        static_cast<int64_t>(rng.below(static_cast<uint64_t>(2 * max_cols_ + 1))) - max_cols_;
  }
  d.rotation = uniform(config_.rotation);
  d.zoom_height = 1 + uniform(config_.zoom_height);
  const float zoom_width = 1 + uniform(config_.zoom_width.value_or(config_.zoom_height));
  d.zoom_width = config_.zoom_width ? zoom_width : d.zoom_height;
  // Drawn after the others, which a config without them draws as before.
  if (config_.contrast)
    d.contrast = uniform({1 - (*config_.contrast)[0], 1 + (*config_.contrast)[1]});
  if (config_.brightness)
    d.brightness = uniform(*config_.brightness) *
                   static_cast<float>(config_.brightness_values[1] - config_.brightness_values[0]);
  d.clips = config_.contrast || config_.brightness;
  return d;
}

int64_t Augmenter::source_index(int64_t i, int64_t shift, int64_t n) const {
  const int64_t s = i - shift;
  if (s >= 0 && s < n) return s;
  if (fill_ == FillMode::kConstant) return -1;
  // Whole coordinates map to whole ones (Note [affine resampling]).
  return static_cast<int64_t>(map_coordinate(static_cast<float>(s), n, fill_));
}

void Augmenter::apply(const AugmentDraw& draw, const float* in, float* out) const {
  flip_and_shift(draw, in, out);
  if (draw.shift_down != 0 || draw.shift_right != 0)
    resample_in_place(translation_transform(draw.shift_down, draw.shift_right),
                      translation_interpolation_, out);
  if (draw.rotation != 0)
    resample_in_place(rotation_transform(draw.rotation, height_, width_), interpolation_, out);
  if (draw.zoom_height != 1 || draw.zoom_width != 1)
    resample_in_place(zoom_transform(draw.zoom_height, draw.zoom_width, height_, width_),
                      interpolation_, out);
  if (draw.clips) adjust_values(draw, out);
}

void Augmenter::adjust_values(const AugmentDraw& draw, float* image) const {
  const int64_t pixels = height_ * width_;
  const auto clip = [image, n = pixels * channels_](const std::array<double, 2>& range) {
    const auto low = static_cast<float>(range[0]), high = static_cast<float>(range[1]);
    for (int64_t i = 0; i < n; ++i) image[i] = std::clamp(image[i], low, high);
  };
  if (config_.contrast) {  // each channel's mean over the image
    for (int64_t ch = 0; ch < channels_; ++ch) {
      double sum = 0;
      for (int64_t p = 0; p < pixels; ++p) sum += image[p * channels_ + ch];
      const auto mean = static_cast<float>(sum / static_cast<double>(pixels));
      for (int64_t p = 0; p < pixels; ++p) {
        float& v = image[p * channels_ + ch];
        v = (v - mean) * draw.contrast + mean;
      }
    }
    clip(config_.contrast_values);
  }
  if (config_.brightness) {
    for (int64_t i = 0; i < pixels * channels_; ++i) image[i] += draw.brightness;
    clip(config_.brightness_values);
  }
}

void Augmenter::resample_in_place(const AffineTransform& t, Interpolation interpolation,
                                  float* image) const {
  thread_local std::vector<float> before;
  before.assign(image, image + height_ * width_ * channels_);
  affine_resample(t, before.data(), image, height_, width_, channels_, fill_, config_.fill_value,
                  interpolation);
}

void Augmenter::flip_and_shift(const AugmentDraw& draw, const float* in, float* out) const {
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
  std::vector<std::string> parts;
  if (config_.flip_horizontal || config_.flip_vertical)
    parts.push_back("random_flip " + std::string(!config_.flip_vertical ? "horizontal"
                                                 : !config_.flip_horizontal
                                                     ? "vertical"
                                                     : "horizontal_and_vertical"));
  if (max_rows_ + max_cols_ > 0)
    parts.push_back("random_translation up to " + std::to_string(max_rows_) + " x " +
                    std::to_string(max_cols_) + " pixels");
  const auto range = [](const std::array<double, 2>& r, double scale) {
    return show_number(r[0] * scale) + " to " + show_number(r[1] * scale);
  };
  const bool translates = max_rows_ + max_cols_ > 0 || config_.translation_interpolation;
  if (config_.translation_interpolation)
    parts.push_back("random_translation " +
                    range(config_.translate_height, static_cast<double>(height_)) + " x " +
                    range(config_.translate_width, static_cast<double>(width_)) + " pixels (" +
                    *config_.translation_interpolation + ")");
  const bool rotates = config_.rotation != std::array<double, 2>{0, 0};
  const bool zooms = config_.zoom_height != std::array<double, 2>{0, 0} || config_.zoom_width;
  if (rotates) parts.push_back("random_rotation " + range(config_.rotation, 360) + " degrees");
  if (zooms)
    parts.push_back("random_zoom " + (config_.zoom_width
                                          ? "height " + range(config_.zoom_height, 1) + ", width " +
                                                range(*config_.zoom_width, 1)
                                          : range(config_.zoom_height, 1)));
  const auto values = [](const std::array<double, 2>& r) {
    return " (values " + show_number(r[0]) + " to " + show_number(r[1]) + ")";
  };
  if (config_.contrast)
    parts.push_back("random_contrast x " +
                    range({1 - (*config_.contrast)[0], 1 + (*config_.contrast)[1]}, 1) +
                    values(config_.contrast_values));
  if (config_.brightness)
    parts.push_back("random_brightness " + range(*config_.brightness, 1) + " of the range" +
                    values(config_.brightness_values));
  std::string out = "augmentation:";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? ", " : " ") + parts[i];
  if (translates || rotates || zooms)
    out += " (" + (rotates || zooms ? config_.interpolation + ", " : std::string()) + "fill_mode " +
           config_.fill_mode + ")";
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
    if (d.changes_nothing()) continue;
    std::copy_n(sample, size, original.data());
    apply(d, original.data(), sample);
  }
}

}  // namespace ddp
