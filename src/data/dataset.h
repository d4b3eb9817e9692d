#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/shape.h"

namespace ddp {

// A labelled dataset held in host memory by every rank; the sampler decides who uses what.
struct Dataset {
  std::string origin;  // files it came from, for error messages
  Shape sample_shape;
  std::vector<float> features;  // (size, sample_shape)
  std::vector<int32_t> labels;  // (size)

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  // Throws DataError naming the origin, the sample and the label when a label is outside [0,
  // classes).
  void check_labels(int64_t classes) const;
  // CRC-32 of shape, features and labels: ranks compare it to detect differing copies.
  uint32_t fingerprint() const;
};

// Copies the samples `indices` into a contiguous batch: features (n, sample_shape) and targets,
// (n) class indices for sparse targets or (n, classes) one-hot rows for dense targets.
void gather_batch(const Dataset& data, std::span<const int64_t> indices, TargetKind kind,
                  int64_t classes, float* features, float* targets);

// The canonical example's data: features uniform in [0, 1), labels uniform in [0, classes).
Dataset make_synthetic(int64_t samples, int64_t features, int64_t classes, uint64_t seed);

// IDX (MNIST / Fashion-MNIST) image and label files, gzip-compressed or plain. Pixel values are
// multiplied by `scale` (1/255 maps bytes to [0, 1]).
Dataset read_idx(const std::string& images_path, const std::string& labels_path, float scale);

struct CsvOptions {
  bool header = true;
  int64_t label_column = -1;  // negative counts from the end: -1 is the last column
  float scale = 1;
};
// Numeric feature columns and one integer label column, comma-separated.
Dataset read_csv(const std::string& path, const CsvOptions& options);

}  // namespace ddp
