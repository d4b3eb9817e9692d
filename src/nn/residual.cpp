#include "nn/residual.h"

#include <stdexcept>

namespace ddp {

namespace {
// The parts' prefixes count the layers with parameters alone, as Sequential's names do (Note
// [parameter names]).
void add_parts(LayerParts& parts, const LayerStack& stack, const std::string& name) {
  size_t k = 0;
  for (const auto& layer : stack.layers()) {
    parts.add(name + "." + std::to_string(k) + ".", *layer);
    if (!layer->param_specs().empty()) ++k;
  }
}
}  // namespace

Residual::Residual(Shape input, std::vector<std::unique_ptr<Layer>> block,
                   std::vector<std::unique_ptr<Layer>> shortcut)
    : input_(std::move(input)), block_(std::move(block)), shortcut_(std::move(shortcut)) {
  if (block_.empty()) throw std::logic_error("Residual: a block of no layers");
  output_ = block_.layers().back()->output_shape();
  const Shape side = shortcut_.empty() ? input_ : shortcut_.layers().back()->output_shape();
  if (side != output_)
    throw std::logic_error("Residual: the shortcut's output " + side.str() + " and the block's " +
                           output_.str() + " differ");
  add_parts(parts_, block_, "layers");
  add_parts(parts_, shortcut_, "shortcut");
}

std::string Residual::describe() const {
  std::string out = "Residual of " + std::to_string(block_.layers().size());
  return out + (shortcut_.empty() ? "" : " + " + std::to_string(shortcut_.layers().size()));
}

void Residual::forward_without_rows(ComputeBackend& backend) {
  block_.forward_without_rows(backend);
  shortcut_.forward_without_rows(backend);
}

void Residual::backward_without_rows(ComputeBackend& backend) {
  block_.backward_without_rows(backend);
  shortcut_.backward_without_rows(backend);
}

void Residual::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  const auto count = static_cast<size_t>(batch * output_.numel());
  const float* branch = block_.forward(backend, x, batch);
  const float* side = shortcut_.empty() ? x : shortcut_.forward(backend, x, batch);
  backend.scale_shift(branch, y, count, 1.0f, 0.0f);
  backend.add_to(side, y, count);
}

// The sum's gradient is each branch's; the block's layers may overwrite it, so the shortcut (or,
// for the identity, dx) takes a copy.
void Residual::backward(ComputeBackend& backend, const float* x, const float* /*y*/, float* dy,
                        float* dx, int64_t batch, bool accumulate) {
  const auto count = static_cast<size_t>(batch * output_.numel());
  float* side_dy = nullptr;
  if (!shortcut_.empty() || dx) {
    side_dy = sized(backend, dy_copy_, batch * output_.numel());
    backend.scale_shift(dy, side_dy, count, 1.0f, 0.0f);
  }
  block_.backward(backend, x, dy, dx, batch, accumulate);
  if (shortcut_.empty()) {
    if (dx) backend.add_to(side_dy, dx, count);
    return;
  }
  float* side_dx = dx ? sized(backend, shortcut_dx_, batch * input_.numel()) : nullptr;
  shortcut_.backward(backend, x, side_dy, side_dx, batch, accumulate);
  if (dx) backend.add_to(side_dx, dx, static_cast<size_t>(batch * input_.numel()));
}

}  // namespace ddp
