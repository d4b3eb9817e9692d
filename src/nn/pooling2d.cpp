#include "nn/pooling2d.h"

namespace ddp {

std::string Pooling2D::type_name() const {
  switch (kind_) {
    case Kind::kMax:
      return "MaxPooling2D";
    case Kind::kAverage:
      return "AveragePooling2D";
    case Kind::kMax1D:
      return "MaxPooling1D";
    case Kind::kAverage1D:
      return "AveragePooling1D";
    case Kind::kGlobalAverage1D:
      return "GlobalAveragePooling1D";
    case Kind::kGlobalMax:
      return "GlobalMaxPooling2D";
    case Kind::kGlobalMax1D:
      return "GlobalMaxPooling1D";
    case Kind::kGlobalAverage:
      break;
  }
  return "GlobalAveragePooling2D";
}

Shape Pooling2D::output_shape() const {
  if (global()) return {window_.channels};
  if (kind_ == Kind::kMax1D || kind_ == Kind::kAverage1D) return {window_.out_w, window_.channels};
  return {window_.out_h, window_.out_w, window_.channels};
}

void Pooling2D::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  if (max())
    backend.max_pool_forward(x, y, batch, window_);
  else
    backend.avg_pool_forward(x, mask_, y, batch, window_, /*mean=*/true);
}

// No parameters: only dx, and nothing when no layer below needs it.
void Pooling2D::backward(ComputeBackend& backend, const float* x, const float* y, float* dy,
                         float* dx, int64_t batch, bool /*accumulate*/) {
  if (!dx) return;
  if (max())
    backend.max_pool_backward(x, y, dy, dx, batch, window_);
  else
    backend.avg_pool_backward(mask_, dy, dx, batch, window_, /*mean=*/true);
}

}  // namespace ddp
