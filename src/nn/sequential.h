#pragma once

#include <array>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "nn/layer.h"

namespace ddp {

// One parameter tensor's place in the flat buffer.
struct ParamEntry {
  size_t layer;
  std::string name;  // "layers.<k>.<param>", see Note [parameter names]
  Shape shape;
  size_t offset;  // in floats, into params() and grads()
  size_t count;
  std::array<int64_t, 4> hwc{};  // Note [PyTorch layout]; zeros: PyTorch's layout already
  float l1 = 0;                  // the weight penalty's factors (Note [weight penalty])
  float l2 = 0;
  bool frozen = false;  // a frozen layer's parameter, among the buffers (Note [frozen layers])
};

// A stack of layers whose parameters and gradients are two flat, contiguous backend buffers
// (layers hold pointers into them), so the all-reduce and the optimizer see one span each. The
// model allocates its parameters, unless they are bound elsewhere with bind_params(); the gradient
// buffer belongs to whoever sums it over ranks (the trainer's GradSync, Note [gradient
// synchronization]), which keeps the parameters too, and is bound with bind_grads().
class Sequential {
 public:
  Sequential(ComputeBackend& backend, Shape input, std::vector<std::unique_ptr<Layer>> layers);

  // Training and evaluation stop before the last layer when it applies `fused`, which the loss
  // applies itself; kNone: never.
  void set_output_logits(OutputFunction fused);
  // Sizes the activation buffers; forward/backward accept any batch up to this.
  void reserve(int64_t max_batch);

  // What the following forward passes are for (Note [dropout mask]); each layer gets its own key
  // derived from pass.key. Inference until set otherwise.
  void set_pass(const Pass& pass);
  // x: (batch, input shape) in backend memory. Returns the trained output (batch, output_cols()).
  const float* forward(const float* x, int64_t batch);
  // Uses the x of the preceding forward. Overwrites grads(), or adds to them when `accumulate`;
  // needs bind_grads() first.
  // output_grad() must hold dLoss/dOutput. on_ready(offset), when given, is called after each
  // layer with parameters: every gradient from `offset` to the end of the flat buffer is then
  // final (backward runs last layer first).
  void backward(int64_t batch, const std::function<void(size_t)>& on_ready = {},
                bool accumulate = false);
  float* output_grad() { return grad_a_.data(); }
  // Applies every layer, including a final Softmax skipped by forward() (probabilities).
  const float* predict(const float* x, int64_t batch);

  // The padding mask (batch, steps) that reaches the trained output in the last forward, or null
  // (Note [padding masks]); and the key of the layer it comes from ("" when none reaches it), set
  // by the builder, for the loss to take (Note [masked positions]) or refuse.
  const float* output_mask() const { return output_mask_; }
  const std::string& output_mask_origin() const { return output_mask_origin_; }
  void set_output_mask_origin(std::string key) { output_mask_origin_ = std::move(key); }

  // A rank without rows in a training step joins the collectives of forward and backward
  // (Note [batch statistics]), and the caller's `after_forward` between them, and calls on_ready
  // as backward would; set_pass() first.
  void join_without_rows(const std::function<void(size_t)>& on_ready,
                         const std::function<void()>& after_forward = {});

  void init_params(uint64_t seed);
  std::span<float> params() { return params_; }
  // State kept but not trained (running statistics), its own flat buffer; entries named as
  // parameters are ("layers.<k>.running_mean").
  std::span<float> buffers() { return buffers_.span(); }
  const std::vector<ParamEntry>& buffer_entries() const { return buffer_entries_; }
  size_t buffer_count() const { return buffers_.size(); }
  std::span<float> grads() { return grads_; }
  // Backward writes into `storage`: param_count() floats of backend memory, kept alive by the
  // caller for as long as the model trains.
  void bind_grads(std::span<float> storage);
  // The parameters move into `storage` (param_count() floats of backend memory, kept alive by the
  // caller for as long as the model is used); the model's own allocation is freed.
  void bind_params(std::span<float> storage);
  size_t param_count() const { return params_.size(); }
  const std::vector<ParamEntry>& param_entries() const { return entries_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  const Shape& input_shape() const { return input_; }
  int64_t output_cols() const;
  std::string summary() const;

 private:
  const float* run(const float* x, int64_t batch, size_t layer_count);
  size_t trained_layers() const { return output_logits_ ? layers_.size() - 1 : layers_.size(); }

  ComputeBackend& backend_;
  Shape input_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<ParamEntry> entries_;
  std::vector<ParamEntry> buffer_entries_;
  DeviceBuffer buffers_;
  static constexpr size_t kNoParams = static_cast<size_t>(-1);
  std::vector<size_t> layer_offsets_;  // per layer, offset of its first parameter
  void bind_layers();
  // The first layer with trained parameters; layers_.size() when none has any.
  size_t lowest_trained_layer() const;

  DeviceBuffer own_params_;  // empty after bind_params()
  std::span<float> params_;  // own_params_ or the bound storage
  std::span<float> grads_;   // empty until bind_grads()
  // Where frozen layers above the lowest trained one write the parameter gradients that nothing
  // reads, at their parameters' offsets in buffers_ (Note [frozen layers]); empty otherwise.
  DeviceBuffer discarded_grads_;
  bool output_logits_ = false;
  const float* output_mask_ = nullptr;
  std::string output_mask_origin_;
  int64_t max_batch_ = 0;
  std::vector<DeviceBuffer> outputs_;  // per layer (max_batch, output shape); empty for aliases
  std::vector<const float*> inputs_;   // per layer, as seen by the last forward
  std::vector<const float*> results_;  // per layer, as produced by the last forward
  DeviceBuffer grad_a_;                // ping-pong buffers for activation gradients
  DeviceBuffer grad_b_;
};

}  // namespace ddp
