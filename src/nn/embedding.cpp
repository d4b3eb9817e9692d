#include "nn/embedding.h"

#include <vector>

namespace ddp {

Embedding::Embedding(Shape input, int64_t vocabulary, int64_t dim)
    : input_(std::move(input)), vocabulary_(vocabulary), dim_(dim) {}

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
  backend.embedding_forward(x, table_, y, batch * input_.numel(), dim_);
}

void Embedding::backward(ComputeBackend& backend, const float* x, const float* /*y*/, float* dy,
                         float* /*dx*/, int64_t batch, bool accumulate) {
  backend.embedding_backward(x, dy, table_grad_, batch * input_.numel(), vocabulary_, dim_,
                             accumulate);
}

}  // namespace ddp
