#include "nn/dropout.h"

#include <cstdio>

namespace ddp {

std::string Dropout::type_name() const {
  if (!spatial_) return "Dropout";
  return shape_.rank() == 2 ? "SpatialDropout1D" : "SpatialDropout2D";
}

std::string Dropout::describe() const {
  char text[48];
  std::snprintf(text, sizeof text, "%s %g", type_name().c_str(), static_cast<double>(rate_));
  return text;
}

void Dropout::apply(ComputeBackend& backend, const float* in, float* out, int64_t batch) {
  const float rate = pass_.training ? rate_ : 0.0f;
  const int64_t steps = spatial_ ? shape_.numel() / shape_.dims().back() : 1;
  backend.dropout(in, out, batch, shape_.numel(), steps, rate, pass_.key, pass_.first_position);
}

void Dropout::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  apply(backend, x, y, batch);
}

// The same mask again: dx = dy * keep / (1 - rate).
void Dropout::backward(ComputeBackend& backend, const float* /*x*/, const float* /*y*/, float* dy,
                       float* dx, int64_t batch, bool /*accumulate*/) {
  if (dx) apply(backend, dy, dx, batch);
}

}  // namespace ddp
