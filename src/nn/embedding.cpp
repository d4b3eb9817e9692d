#include "nn/embedding.h"

#include <vector>

namespace ddp {

Embedding::Embedding(Shape input, int64_t vocabulary, int64_t dim, bool mask_zero)
    : input_(std::move(input)), vocabulary_(vocabulary), dim_(dim), mask_zero_(mask_zero) {}

Shape Embedding::output_shape() const {
  std::vector<int64_t> dims = input_.dims();
  dims.push_back(dim_);
  return Shape(dims);
}

std::vector<ParamSpec> Embedding::param_specs() const {
  return {{"weight", Shape{vocabulary_, dim_}, {}}};
}

void Embedding::bind(std::span<float* const> params, std::span<float* const> grads) {
  table_ = params[0];
  table_grad_ = grads[0];
}

void Embedding::init_params(Rng& rng, std::span<const std::span<float>> params) const {
  for (float& w : params[0]) w = rng.uniform(-0.05f, 0.05f);
}

void Embedding::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  const int64_t count = batch * input_.numel();
  backend.embedding_forward(x, table_, y, count, dim_);
  if (!mask_zero_) return;
  const auto values = static_cast<size_t>(count);
  if (mask_.size() < values) {
    mask_ = DeviceBuffer(backend, values);
    zeros_ = DeviceBuffer(backend, values);  // zero-filled, and never written
  }
  // Ones, then the zeros' rows of one value wherever the id is 0.
  backend.scale_shift(zeros_.data(), mask_.data(), values, 0.0f, 1.0f);
  backend.carry_rows(x, zeros_.data(), mask_.data(), count, 1);
}

void Embedding::backward(ComputeBackend& backend, const float* x, const float* /*y*/, float* dy,
                         float* /*dx*/, int64_t batch, bool accumulate) {
  backend.embedding_backward(x, dy, table_grad_, batch * input_.numel(), vocabulary_, dim_,
                             accumulate);
}

}  // namespace ddp
