#include "nn/zero_padding2d.h"

namespace ddp {

Shape ZeroPadding2D::output_shape() const {
  if (one_row_) return {padded_.out_w, padded_.channels};
  return {padded_.out_h, padded_.out_w, padded_.channels};
}

void ZeroPadding2D::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  backend.avg_pool_forward(x, nullptr, y, batch, padded_, /*mean=*/false);
}

// No parameters: only dx, and nothing when no layer below needs it.
void ZeroPadding2D::backward(ComputeBackend& backend, const float* /*x*/, const float* /*y*/,
                             float* dy, float* dx, int64_t batch, bool /*accumulate*/) {
  if (dx) backend.avg_pool_backward(nullptr, dy, dx, batch, padded_, /*mean=*/false);
}

}  // namespace ddp
