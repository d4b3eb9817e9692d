#include "python_arrays.h"

#include <algorithm>

#include "core/error.h"

namespace ddp::python {

keras::Arrays arrays(const FloatArray& x, const std::optional<py::array>& y,
                     const std::string& call, const std::optional<FloatArray>& sample_weight) {
  if (x.ndim() < 2)
    throw ddp::DataError(call + ": x must have a sample axis and a sample shape, (samples, ...); " +
                         "got " + std::to_string(x.ndim()) + " dimension(s)");
  keras::Arrays out;
  for (py::ssize_t d = 1; d < x.ndim(); ++d) out.sample_shape.push_back(x.shape(d));
  out.features.assign(x.data(), x.data() + x.size());
  if (y && y->dtype().kind() == 'f') {
    const auto targets = y->cast<FloatArray>();
    // Targets of several axes (a value per step, say) are the sample's in order, as the model's
    // outputs are.
    if (targets.ndim() < 1 || targets.shape(0) != x.shape(0))
      throw ddp::DataError(call + ": real-valued y must hold the targets of each sample of x, (" +
                           std::to_string(x.shape(0)) + ",) or (" + std::to_string(x.shape(0)) +
                           ", ...)");
    out.targets.assign(targets.data(), targets.data() + targets.size());
  } else if (y) {
    // Labels of several axes (one-hot rows per step) are the sample's in order, as above.
    const auto labels = y->cast<LabelArray>();
    if (labels.ndim() < 1 || labels.shape(0) != x.shape(0))
      throw ddp::DataError(call + ": y must hold a class index, or 0/1 labels, per sample of x, (" +
                           std::to_string(x.shape(0)) + ",) or (" + std::to_string(x.shape(0)) +
                           ", labels...)");
    out.labels.assign(labels.data(), labels.data() + labels.size());
  }
  if (sample_weight) {
    if (sample_weight->ndim() != 1 || sample_weight->shape(0) != x.shape(0))
      throw ddp::DataError(call + ": sample_weight must hold one weight per sample of x, (" +
                           std::to_string(x.shape(0)) + ",)");
    out.sample_weights.assign(sample_weight->data(), sample_weight->data() + sample_weight->size());
  }
  return out;
}

FloatArray array_of(const std::vector<float>& values, std::vector<py::ssize_t> shape) {
  FloatArray out(shape);
  std::copy(values.begin(), values.end(), out.mutable_data());
  return out;
}

}  // namespace ddp::python
