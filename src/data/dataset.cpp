#include "data/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/rng.h"

namespace ddp {

void Dataset::check_labels(int64_t classes) const {
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= classes)
      throw DataError(origin + ": label " + std::to_string(labels[i]) + " of sample " +
                      std::to_string(i) + " is outside [0, " + std::to_string(classes) +
                      ") for a model with " + std::to_string(classes) + " outputs");
  }
}

uint32_t Dataset::fingerprint() const {
  uLong crc = crc32(0L, Z_NULL, 0);
  for (int64_t d : sample_shape.dims())
    crc = crc32(crc, reinterpret_cast<const Bytef*>(&d), sizeof d);
  // zlib's length argument is 32-bit: feed large arrays in chunks.
  auto feed = [&crc](const void* data, size_t bytes) {
    const auto* p = static_cast<const Bytef*>(data);
    while (bytes > 0) {
      const auto chunk = static_cast<uInt>(std::min<size_t>(bytes, 1u << 30));
      crc = crc32(crc, p, chunk);
      p += chunk;
      bytes -= chunk;
    }
  };
  feed(features.data(), features.size() * sizeof(float));
  feed(labels.data(), labels.size() * sizeof(int32_t));
  return static_cast<uint32_t>(crc);
}

void gather_batch(const Dataset& data, std::span<const int64_t> indices, TargetKind kind,
                  int64_t classes, float* features, float* targets) {
  const auto width = static_cast<size_t>(data.sample_shape.numel());
  for (size_t row = 0; row < indices.size(); ++row) {
    const auto sample = static_cast<size_t>(indices[row]);
    std::memcpy(features + row * width, data.features.data() + sample * width,
                width * sizeof(float));
    const int32_t label = data.labels[sample];
    if (kind == TargetKind::kSparse) {
      targets[row] = static_cast<float>(label);
    } else {
      float* one_hot = targets + row * static_cast<size_t>(classes);
      std::fill(one_hot, one_hot + classes, 0.0f);
      one_hot[label] = 1;
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
