#include "train/gradient_clipping.h"

#include <cmath>
#include <span>

namespace ddp {

double clip_global_norm(GradSync& sync, ComputeBackend& backend, double max_norm) {
  const std::span<float> grads = sync.shard_grads();
  const double norm =
      std::sqrt(sync.sum_over_shards(backend.squared_norm(grads.data(), grads.size())));
  if (norm > max_norm)
    backend.scale(grads.data(), grads.size(), static_cast<float>(max_norm / norm));
  return norm;
}

}  // namespace ddp
