#include "nn/position_embedding.h"

#include <cmath>
#include <vector>

namespace ddp {

void PositionEmbedding::init_params(Rng& rng, std::span<const std::span<float>> params) const {
  const float limit = std::sqrt(6.0f / static_cast<float>(steps_ + features_));
  for (float& w : params[0]) w = rng.uniform(-limit, limit);
}

const float* PositionEmbedding::positions(ComputeBackend& backend, int64_t batch) {
  const auto count = static_cast<size_t>(batch * steps_);
  if (positions_.size() < count) {
    std::vector<float> ids(count);
    for (size_t i = 0; i < count; ++i)
      ids[i] = static_cast<float>(static_cast<int64_t>(i) % steps_);
    positions_ = DeviceBuffer(backend, count);
    backend.copy_to_device(ids.data(), positions_.data(), count);
  }
  return positions_.data();
}

void PositionEmbedding::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  backend.embedding_forward(positions(backend, batch), table_, y, batch * steps_, features_);
  backend.add_to(x, y, static_cast<size_t>(batch * steps_ * features_));
}

void PositionEmbedding::backward(ComputeBackend& backend, const float* /*x*/, const float* /*y*/,
                                 float* dy, float* dx, int64_t batch, bool accumulate) {
  backend.embedding_backward(positions(backend, batch), dy, table_grad_, batch * steps_, steps_,
                             features_, accumulate);
  if (dx) backend.copy_matrix(dy, features_, 1, dx, features_, batch * steps_, features_);
}

}  // namespace ddp
