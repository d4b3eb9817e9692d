#include "data/dataset.h"

#include <libdeflate.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/rng.h"

namespace ddp {

void check_sample_weights(std::span<const float> weights, int64_t samples,
                          const std::string& origin) {
  if (static_cast<int64_t>(weights.size()) != samples)
    throw DataError(origin + ": " + std::to_string(weights.size()) + " sample weights for " +
                    std::to_string(samples) + " samples: give one weight per sample");
  for (size_t i = 0; i < weights.size(); ++i)
    if (!(std::isfinite(weights[i]) && weights[i] >= 0))
      throw DataError(origin + ": the weight of sample " + std::to_string(i) + " is " +
                      std::to_string(weights[i]) + "; sample weights must be finite and >= 0");
}

void Dataset::check_labels(int64_t classes, TargetLayout layout, bool binary, int64_t positions,
                           std::optional<int64_t> ignored) const {
  if (weighted()) check_sample_weights(sample_weights, size(), origin);
  if (real_valued() != (layout == TargetLayout::kValues))
    throw DataError(origin + (real_valued() ? ": real-valued targets, where the training set has "
                                              "integer labels"
                                            : ": integer labels, where the training set has "
                                              "real-valued targets"));
  if (layout == TargetLayout::kValues) {
    if (label_width != classes)
      throw DataError(origin + ": " + std::to_string(label_width) + " target value(s) per sample " +
                      "for a model with " + std::to_string(classes) + " outputs");
    return;
  }
  // A class index a position, as an index (sparse) or made one-hot (categorical).
  if ((layout == TargetLayout::kClassIndex || layout == TargetLayout::kOneHot) &&
      label_width != positions)
    throw DataError(origin + ": " + std::to_string(label_width) +
                    (positions > 1
                         ? " label column(s) per sample, but the model's output has " +
                               std::to_string(positions) + " positions (steps) of " +
                               std::to_string(classes) + " classes: a class per position"
                         : " label columns per sample, but the loss takes one class per sample "
                           "(multi-label data needs binary_crossentropy or mean_squared_error; a "
                           "class per step, a model whose output keeps the steps)"));
  if (layout == TargetLayout::kLabels && label_width != classes * positions)
    throw DataError(origin + ": " + std::to_string(label_width) + " label column(s) per sample " +
                    "for a model with " + std::to_string(classes * positions) + " outputs");
  for (size_t i = 0; i < labels.size(); ++i) {
    const auto sample = std::to_string(static_cast<int64_t>(i) / label_width);
    const std::string column =
        label_width > 1 ? ", label column " + std::to_string(static_cast<int64_t>(i) % label_width)
                        : "";
    if (binary && (labels[i] < 0 || labels[i] > 1))
      throw DataError(origin + ": label " + std::to_string(labels[i]) + " of sample " + sample +
                      column + " is not 0 or 1, as binary_crossentropy needs");
    if (layout != TargetLayout::kLabels && (labels[i] < 0 || labels[i] >= classes) &&
        labels[i] != ignored)
      throw DataError(origin + ": label " + std::to_string(labels[i]) + " of sample " + sample +
                      column + " is outside [0, " + std::to_string(classes) +
                      ") for a model with " + std::to_string(classes) + " outputs" +
                      (layout == TargetLayout::kClassIndex && labels[i] < 0
                           ? " (labels to leave out: loss.ignore_class, PyTorch's ignore_index)"
                           : ""));
  }
}

void Dataset::check_token_ids(int64_t vocabulary) const {
  const int64_t per_sample = sample_shape.numel();
  const auto count = static_cast<size_t>(size() * per_sample);
  const auto bound = static_cast<float>(vocabulary);
  for (size_t i = 0; i < count; ++i) {
    const float id = feature(i);
    if (id >= 0 && id < bound && id == std::floor(id)) continue;
    const auto at = static_cast<int64_t>(i);
    std::ostringstream shown;
    shown << id;
    throw DataError(origin + ": sample " + std::to_string(at / per_sample) + ", value " +
                    std::to_string(at % per_sample) + " is " + shown.str() +
                    ", not a token id in [0, " + std::to_string(vocabulary) +
                    ") for the embedding's input_dim " + std::to_string(vocabulary));
  }
}

uint32_t Dataset::fingerprint() const {
  // libdeflate's CRC-32 (the same checksum as zlib's) folds with carry-less multiplies: W2's 47 MB
  // of features in a few ms instead of zlib's 20. Like zlib's, it returns the initial value for a
  // null pointer (an empty vector's data()), which would forget everything fed before.
  uint32_t crc = 0;
  auto feed = [&crc](const void* data, size_t bytes) {
    if (bytes > 0) crc = libdeflate_crc32(crc, data, bytes);
  };
  for (int64_t d : sample_shape.dims()) feed(&d, sizeof d);
  feed(stored_floats(), byte_valued() ? 0 : stored_size());  // as stored: mapped or not alike
  feed(stored_bytes(), byte_valued() ? stored_size() : 0);
  feed(&byte_scale, sizeof byte_scale);
  feed(&label_width, sizeof label_width);
  feed(sample_weights.data(), sample_weights.size() * sizeof(float));
  feed(labels.data(), labels.size() * sizeof(int32_t));
  feed(values.data(), values.size() * sizeof(float));
  return crc;
}

namespace {

// Requests every line of the samples `indices` into L2 (locality 2: prefetcht1 on x86).
void prefetch_samples(const uint8_t* base, size_t sample_bytes, std::span<const int64_t> indices) {
  for (const int64_t sample : indices) {
    const uint8_t* first = base + static_cast<size_t>(sample) * sample_bytes;
    for (size_t byte = 0; byte < sample_bytes; byte += 64) __builtin_prefetch(first + byte, 0, 2);
    __builtin_prefetch(first + sample_bytes - 1, 0, 2);  // the last line, where rows straddle
  }
}

// Row `row` of a batch's targets from sample `sample`'s labels or values, laid out as `layout`
// says, one-hot rows smoothed over the classes of one of `positions`.
void write_targets(const Dataset& data, size_t sample, TargetLayout layout, int64_t classes,
                   float smoothing, int64_t positions, size_t row, float* targets) {
  const auto label_width = static_cast<size_t>(data.label_width);
  if (layout == TargetLayout::kValues) {
    const float* values = data.values.data() + sample * label_width;
    std::copy(values, values + label_width, targets + row * label_width);
    return;
  }
  const int32_t* label = data.labels.data() + sample * label_width;
  if (layout == TargetLayout::kClassIndex) {
    for (size_t p = 0; p < label_width; ++p)
      targets[row * label_width + p] = static_cast<float>(label[p]);
  } else if (layout == TargetLayout::kLabels) {
    // One-hot rows as given (categorical_crossentropy's), smoothed as the index form's below.
    float* out = targets + row * label_width;
    const float off = smoothing / static_cast<float>(label_width / static_cast<size_t>(positions));
    for (size_t c = 0; c < label_width; ++c)
      out[c] = smoothing > 0 ? static_cast<float>(label[c]) * (1 - smoothing) + off
                             : static_cast<float>(label[c]);
  } else {
    // A one-hot row of classes / label_width for each of the label_width positions.
    const auto per_position = static_cast<size_t>(classes) / label_width;
    const float off = smoothing / static_cast<float>(per_position);
    float* one_hot = targets + row * static_cast<size_t>(classes);
    std::fill(one_hot, one_hot + classes, off);
    for (size_t p = 0; p < label_width; ++p)
      one_hot[p * per_position + static_cast<size_t>(label[p])] = 1 - smoothing + off;
  }
}

}  // namespace

void gather_batch(const Dataset& data, std::span<const int64_t> indices, TargetLayout layout,
                  int64_t classes, float* features, float* targets, float label_smoothing,
                  int64_t positions) {
  const auto width = static_cast<size_t>(data.sample_shape.numel());
  const bool bytes = data.byte_valued();
  const size_t sample_bytes = width * (bytes ? sizeof(uint8_t) : sizeof(float));
  const auto* stored =
      bytes ? data.stored_bytes() : reinterpret_cast<const uint8_t*>(data.stored_floats());
  const float byte_scale = data.byte_scale;
  // The samples of a shuffled batch are scattered over the dataset (Fashion-MNIST's 47 MB), and
  // the step's own traffic has pushed them out of the caches: read one after the other, each
  // sample's first lines waited for memory. Their lines are requested a chunk at a time first,
  // so the fetches overlap (W2's gather: 0.10 -> 0.05 ms a batch; a chunk of 64 KB stays within
  // L2 whatever the sample size).
  constexpr size_t kChunkBytes = 64 * 1024;
  const size_t chunk = std::max<size_t>(1, kChunkBytes / std::max<size_t>(1, sample_bytes));
  for (size_t first = 0; first < indices.size(); first += chunk) {
    const size_t end = std::min(indices.size(), first + chunk);
    if (sample_bytes > 0)
      prefetch_samples(stored, sample_bytes, indices.subspan(first, end - first));
    for (size_t row = first; row < end; ++row) {
      const auto sample = static_cast<size_t>(indices[row]);
      float* to = features + row * width;
      const uint8_t* from = stored + sample * sample_bytes;
      if (!bytes) {
        std::memcpy(to, from, sample_bytes);
      } else {
        for (size_t k = 0; k < width; ++k) to[k] = Dataset::from_byte(from[k], byte_scale);
      }
      if (targets)
        write_targets(data, sample, layout, classes, label_smoothing, positions, row, targets);
    }
  }
}

Dataset make_synthetic(int64_t samples, int64_t features, int64_t classes, uint64_t seed) {
  Dataset data;
  data.origin = "synthetic(" + std::to_string(samples) + "x" + std::to_string(features) + ")";
  data.sample_shape = Shape{features};
  data.features.resize(static_cast<size_t>(samples * features));
  data.labels.resize(static_cast<size_t>(samples));
  Rng rng(derive_seed(seed, /*stream=*/2));
  for (float& x : data.features) x = rng.uniform();
  for (int32_t& y : data.labels)
    y = static_cast<int32_t>(rng.below(static_cast<uint64_t>(classes)));
  return data;
}

}  // namespace ddp

namespace ddp {

namespace {

// Features uniform in [0, 1) from `seed`, and per sample the scores s_j = sum_k w_jk (x_k - 1/2)
// of a random rule w ((width, features), uniform in [-1, 1]) that depends only on the shape, so a
// training and a test set of other seeds share it.
Dataset synthetic_scored(int64_t samples, int64_t features, int64_t width, uint64_t seed,
                         std::vector<double>& scores) {
  Dataset data = make_synthetic(samples, features, 1, seed);
  data.label_width = width;
  std::vector<float> rule(static_cast<size_t>(width * features));
  Rng rng(derive_seed(static_cast<uint64_t>(features * 1000 + width), /*stream=*/3));
  for (float& w : rule) w = rng.uniform(-1, 1);
  scores.assign(static_cast<size_t>(samples * width), 0.0);
  for (size_t i = 0; i < static_cast<size_t>(samples); ++i) {
    const float* x = data.features.data() + i * static_cast<size_t>(features);
    for (size_t j = 0; j < static_cast<size_t>(width); ++j) {
      const float* w = rule.data() + j * static_cast<size_t>(features);
      double& score = scores[i * static_cast<size_t>(width) + j];
      for (size_t k = 0; k < static_cast<size_t>(features); ++k) score += w[k] * (x[k] - 0.5);
    }
  }
  return data;
}

}  // namespace

Dataset make_synthetic_multilabel(int64_t samples, int64_t features, int64_t labels,
                                  uint64_t seed) {
  std::vector<double> scores;
  Dataset data = synthetic_scored(samples, features, labels, seed, scores);
  data.origin = "synthetic multi-label(" + std::to_string(samples) + "x" +
                std::to_string(features) + ", " + std::to_string(labels) + " labels)";
  data.labels.resize(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) data.labels[i] = scores[i] > 0 ? 1 : 0;
  return data;
}

Dataset make_synthetic_regression(int64_t samples, int64_t features, int64_t targets,
                                  uint64_t seed) {
  std::vector<double> scores;
  Dataset data = synthetic_scored(samples, features, targets, seed, scores);
  data.origin = "synthetic regression(" + std::to_string(samples) + "x" + std::to_string(features) +
                ", " + std::to_string(targets) + " targets)";
  data.labels.clear();
  data.values.resize(scores.size());
  for (size_t i = 0; i < scores.size(); ++i)
    data.values[i] = static_cast<float>(std::sin(2 * scores[i]));
  return data;
}

namespace {

// Texts of `length` token ids (Note [padding masks]), named `kind` in the origin: each sample's
// real ids uniform in [first, vocabulary), first 1 where id 0 is the padding; min_length to length
// of them (uniform; all without min_length), then id 0 to the end.
Dataset synthetic_texts(const std::string& kind, int64_t samples, int64_t length,
                        int64_t vocabulary, uint64_t seed, int64_t min_length, uint64_t stream) {
  Dataset data = make_synthetic(samples, length, 1, seed);
  data.origin = "synthetic " + kind + "(" + std::to_string(samples) + "x" + std::to_string(length) +
                ", vocabulary " + std::to_string(vocabulary) +
                (min_length > 0 ? ", padded from " + std::to_string(min_length) : "") + ")";
  Rng rng(derive_seed(seed, stream));
  const int64_t first = min_length > 0 ? 1 : 0;
  for (int64_t s = 0; s < samples; ++s) {
    const int64_t real =
        min_length > 0
            ? min_length +
                  static_cast<int64_t>(rng.below(static_cast<uint64_t>(length - min_length + 1)))
            : length;
    for (int64_t k = 0; k < length; ++k)
      data.features[static_cast<size_t>(s * length + k)] =
          k < real ? static_cast<float>(first + static_cast<int64_t>(rng.below(
                                                    static_cast<uint64_t>(vocabulary - first))))
                   : 0.0f;
  }
  return data;
}

}  // namespace

Dataset make_synthetic_tokens(int64_t samples, int64_t length, int64_t vocabulary, int64_t classes,
                              uint64_t seed, int64_t min_length) {
  Dataset data =
      synthetic_texts("tokens", samples, length, vocabulary, seed, min_length, /*stream=*/4);
  std::vector<int64_t> counts(static_cast<size_t>(classes));
  for (int64_t i = 0; i < samples; ++i) {
    std::fill(counts.begin(), counts.end(), 0);
    for (int64_t k = 0; k < length; ++k) {
      const auto id = static_cast<int64_t>(data.features[static_cast<size_t>(i * length + k)]);
      if (min_length == 0 || id != 0) ++counts[static_cast<size_t>(id * classes / vocabulary)];
    }
    data.labels[static_cast<size_t>(i)] =
        static_cast<int32_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
  }
  return data;
}

Dataset make_synthetic_tags(int64_t samples, int64_t length, int64_t vocabulary, int64_t classes,
                            uint64_t seed, int64_t min_length) {
  Dataset data =
      synthetic_texts("tags", samples, length, vocabulary, seed, min_length, /*stream=*/5);
  data.label_width = length;
  data.labels.assign(static_cast<size_t>(samples * length), 0);  // padding tagged 0
  for (size_t i = 0; i < data.features.size(); ++i) {
    if (min_length > 0 && data.features[i] == 0) continue;
    const bool first = i % static_cast<size_t>(length) == 0;
    const float tagged = first ? data.features[i] : data.features[i - 1];
    data.labels[i] = static_cast<int32_t>(static_cast<int64_t>(tagged) * classes / vocabulary);
  }
  return data;
}

}  // namespace ddp
