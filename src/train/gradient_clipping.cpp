#include "train/gradient_clipping.h"

#include <cmath>
#include <span>

namespace ddp {

float global_clip_scale(GradSync& sync, ComputeBackend& backend, double max_norm) {
  const std::span<float> grads = sync.shard_grads();
  const double norm =
      std::sqrt(sync.sum_over_shards(backend.squared_norm(grads.data(), grads.size())));
  return norm > max_norm ? static_cast<float>(max_norm / norm) : 1.0f;
}

}  // namespace ddp
