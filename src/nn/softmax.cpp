#include "nn/softmax.h"

namespace ddp {

void Softmax::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  backend.softmax_forward(x, y, rows(batch), cols());
}

void Softmax::backward(ComputeBackend& backend, const float* /*x*/, const float* y, float* dy,
                       float* dx, int64_t batch, bool /*accumulate*/) {
  if (dx) backend.softmax_backward(y, dy, dx, rows(batch), cols());
}

}  // namespace ddp
