#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/mapped_file.h"
#include "core/shape.h"

namespace ddp {

// How a batch's targets are laid out from the labels (see gather_batch).
enum class TargetLayout {
  kClassIndex,  // (n, label_width): the class index (sparse categorical cross-entropy), one per
                // position of the output (Note [targets per position]): label_width of them
  kOneHot,      // (n, classes): one-hot rows of the class index, or of each position's (a row of
                // classes / label_width per position: Note [targets per position])
  kLabels,      // (n, label_width): the labels themselves (multi-hot, or one binary label)
  kValues,      // (n, label_width): real-valued targets (regression), Dataset::values
};

// A labelled dataset held in host memory by every rank; the sampler decides who uses what.
struct Dataset {
  std::string origin;  // files it came from, for error messages
  Shape sample_shape;
  std::vector<float> features;  // (size, sample_shape), or empty when byte_features hold them
  // Byte-valued features (IDX images) stay bytes, times byte_scale as batches are gathered: a
  // quarter of the memory, page faults and CRC work of floats (Fashion-MNIST: 47 MB, not 188).
  std::vector<uint8_t> byte_features;
  float byte_scale = 1;
  // Features read in place from a file (Note [mapped features]) in place of both vectors: float32
  // values, or bytes (times byte_scale) with `mapped_bytes`.
  std::shared_ptr<const MappedFile> mapping;
  std::span<const std::byte> mapped;
  bool mapped_bytes = false;
  std::vector<int32_t> labels;  // (size, label_width)
  // Real-valued targets (regression), (size, label_width), in place of labels: a dataset holds
  // one or the other.
  std::vector<float> values;
  // Labels (or values) per sample: 1 (a class index, one binary label, one value) or several
  // (multi-hot 0/1 columns for multi-label classification, or values).
  int64_t label_width = 1;
  // Note [sample weights]: Keras' sample_weight, one per sample, or empty (every sample weighs
  // 1). A sample's loss, and so its gradient, is multiplied by its weight, in training and in
  // evaluation alike; a batch's loss is still the sum over its samples over the batch size
  // (Keras' sum_over_batch_size), so weights need not sum to anything. Weights multiply class
  // weights (Note [class weights]); the metrics (accuracy and the rest) are not weighted, where
  // Keras weights them too. The weights go to the loss as a weight per row of the batch, as class
  // weights do (Note [class weights]).
  std::vector<float> sample_weights;

  int64_t size() const {
    return static_cast<int64_t>(values.empty() ? labels.size() : values.size()) / label_width;
  }
  bool real_valued() const { return !values.empty(); }
  bool weighted() const { return !sample_weights.empty(); }
  // A byte feature as a float, as batches hold it.
  float from_byte(uint8_t value) const { return from_byte(value, byte_scale); }
  static float from_byte(uint8_t value, float scale) { return static_cast<float>(value) * scale; }
  // The features as stored: bytes (times byte_scale) or floats, in memory or mapped.
  bool byte_valued() const { return mapping ? mapped_bytes : !byte_features.empty(); }
  const uint8_t* stored_bytes() const {
    return mapping ? reinterpret_cast<const uint8_t*>(mapped.data()) : byte_features.data();
  }
  const float* stored_floats() const {
    return mapping ? reinterpret_cast<const float*>(mapped.data()) : features.data();
  }
  size_t stored_size() const {  // bytes
    return mapping ? mapped.size() : byte_features.size() + features.size() * sizeof(float);
  }
  // Feature i of the flat (size, sample_shape) array, as a batch holds it.
  float feature(size_t i) const {
    return byte_valued() ? from_byte(stored_bytes()[i]) : stored_floats()[i];
  }
  // Throws DataError naming the origin, the sample and the label when the labels do not fit a
  // model with `classes` outputs under `layout`: a class index outside [0, classes), or label
  // columns other than `classes` of them; with `binary`, a label other than 0 or 1; values for a
  // layout of labels, or labels for kValues; sample weights that check_sample_weights refuses.
  // kClassIndex takes a class index per position (Note [targets per position]): `positions` of
  // them per sample, each in [0, classes) or `ignored` (Note [masked positions]).
  void check_labels(int64_t classes, TargetLayout layout, bool binary, int64_t positions = 1,
                    std::optional<int64_t> ignored = std::nullopt) const;
  // Throws DataError naming the origin, the sample and the position of the first feature that is
  // not a token id below `vocabulary` (a whole number in [0, vocabulary): an Embedding's input).
  void check_token_ids(int64_t vocabulary) const;
  // CRC-32 of shape, features (as stored) and labels: ranks compare it to detect differing copies.
  uint32_t fingerprint() const;
  // Note [mapped features]: throws DataError naming the mapped file if it was modified in place.
  void check_unchanged() const {
    if (mapping) mapping->check_unchanged();
  }
};

// Throws DataError naming `origin` unless there is one weight per sample, each finite and >= 0
// (Note [sample weights]).
void check_sample_weights(std::span<const float> weights, int64_t samples,
                          const std::string& origin);

// Copies the samples `indices` into a contiguous batch: features (n, sample_shape) and targets
// as `layout` says (none when `targets` is null). With label_smoothing e, one-hot rows are Keras'
// and PyTorch's smoothed ones: (1 - e) one_hot + e / classes, classes those of one of the
// `positions` a sample's targets hold (Note [targets per position]).
void gather_batch(const Dataset& data, std::span<const int64_t> indices, TargetLayout layout,
                  int64_t classes, float* features, float* targets, float label_smoothing = 0,
                  int64_t positions = 1);

// The canonical example's data: features uniform in [0, 1), labels uniform in [0, classes).
Dataset make_synthetic(int64_t samples, int64_t features, int64_t classes, uint64_t seed);
// Multi-label data: features uniform in [0, 1) from `seed`; `labels` 0/1 labels per sample, label
// j set when sum_k w_jk (x_k - 1/2) > 0 for a random w (uniform in [-1, 1]) that depends only on
// the shape, so a training and a test set of other seeds share the rule: learnable, with about
// half of each label set.
Dataset make_synthetic_multilabel(int64_t samples, int64_t features, int64_t labels, uint64_t seed);
// Regression data: features as above; `targets` real values per sample, target j = sin(2 s_j) for
// the same rule's score s_j = sum_k w_jk (x_k - 1/2): smooth, nonlinear, within [-1, 1].
Dataset make_synthetic_regression(int64_t samples, int64_t features, int64_t targets,
                                  uint64_t seed);
// Token data for an Embedding: `length` token ids per sample uniform in [0, vocabulary); a
// sample's class is the one whose share of the vocabulary (ids c * vocabulary / classes up to the
// next share's) holds most of its tokens, the lowest such on a tie: a bag of words, learnable by an
// embedding and an average over the tokens. min_length > 0: each text has min_length to `length`
// ids (uniform), in [1, vocabulary), then id 0 to the end, padding (Note [padding masks]); its
// class from those ids alone.
Dataset make_synthetic_tokens(int64_t samples, int64_t length, int64_t vocabulary, int64_t classes,
                              uint64_t seed, int64_t min_length = 0);
// Texts tagged token by token (Note [targets per position]): `length` token ids per sample, uniform
// in [0, vocabulary), and a class per token, `length` labels per sample: the first token's own
// class, every other token's the class of the token before it (id * classes / vocabulary), so
// that only a model that sees the context tags well. With `min_length` > 0, texts of min_length
// to length ids in [1, vocabulary), then id 0 to the end, padding tagged 0 (Note [masked
// positions]).
Dataset make_synthetic_tags(int64_t samples, int64_t length, int64_t vocabulary, int64_t classes,
                            uint64_t seed, int64_t min_length = 0);

// IDX (MNIST / Fashion-MNIST) image and label files, gzip-compressed or plain. Pixel values are
// multiplied by `scale` (1/255 maps bytes to [0, 1]).
Dataset read_idx(const std::string& images_path, const std::string& labels_path, float scale);

struct CsvOptions {
  bool header = true;
  int64_t label_column = -1;  // negative counts from the end: -1 is the last column
  std::vector<int64_t> label_columns =
      {};  // several (multi-label), in order; replaces label_column
  float scale = 1;
  bool float_labels = false;  // the label columns are real-valued targets (Dataset::values)
};
// Numeric feature columns and one or more label columns (integers, or real values with
// float_labels), comma-separated.
Dataset read_csv(const std::string& path, const CsvOptions& options);

}  // namespace ddp
