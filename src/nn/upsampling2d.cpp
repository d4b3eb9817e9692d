#include "nn/upsampling2d.h"

namespace ddp {

Shape UpSampling2D::output_shape() const {
  if (one_row_) return {blocks_.width, blocks_.channels};
  return {blocks_.height, blocks_.width, blocks_.channels};
}

void UpSampling2D::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  backend.avg_pool_backward(nullptr, x, y, batch, blocks_, /*mean=*/false);
}

// No parameters: only dx, and nothing when no layer below needs it.
void UpSampling2D::backward(ComputeBackend& backend, const float* /*x*/, const float* /*y*/,
                            float* dy, float* dx, int64_t batch, bool /*accumulate*/) {
  if (dx) backend.avg_pool_forward(dy, nullptr, dx, batch, blocks_, /*mean=*/false);
}

}  // namespace ddp
