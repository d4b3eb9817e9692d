#pragma once
// A layer of a Sequential model. Layers are stateless between calls: the model owns the
// activations and hands each layer its input x and output y, so what backward needs is explicit.
// Parameters live in the model's flat buffer; a layer receives pointers into it via bind().

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/in_backward_update.h"
#include "core/rng.h"
#include "core/shape.h"

namespace ddp {

// What a forward pass is for (Note [dropout mask]): inference (the default), or a training step,
// with the key of this pass's random masks and the position, in the epoch's sample order, of the
// batch's first sample (rows are consecutive positions).
// A training pass also carries the sum over the ranks that share the global batch (Note [batch
// statistics]): collective, in place on host values; empty in one process.
// Where the run allows it, the pass before a step's update carries the update: layers that can
// (Dense) hand it their gradients during backward instead of leaving them for after.
struct Pass {
  bool training = false;
  uint64_t key = 0;
  int64_t first_position = 0;
  std::function<void(std::span<double>)> sum_over_ranks;
  InBackwardUpdate* update_in_backward = nullptr;
};

struct ParamSpec {
  std::string name;  // "weight", "bias"
  Shape shape;
  // Note [PyTorch layout]: (rows, h, w, c) when PyTorch orders this tensor's last three axes
  // (c, h, w); zeros when PyTorch stores it as it is.
  std::array<int64_t, 4> hwc{};
  float l1 = 0, l2 = 0;  // the weight penalty's factors (Note [weight penalty])
};

// The function a layer applies to each sample's values that a loss can apply itself, fused and
// stable, to the logits before it (Sequential::set_output_logits).
enum class OutputFunction { kNone, kSoftmax, kSigmoid };

class Layer {
 public:
  virtual ~Layer() = default;

  virtual std::string type_name() const = 0;  // "Dense", as in a Keras summary
  virtual OutputFunction output_function() const { return OutputFunction::kNone; }
  virtual std::string describe() const { return type_name(); }
  virtual Shape output_shape() const = 0;  // per sample

  virtual std::vector<ParamSpec> param_specs() const { return {}; }
  // Pointers into the model's flat parameter and gradient buffers, one per param_specs() entry.
  virtual void bind(std::span<float* const> /*params*/, std::span<float* const> /*grads*/) {}
  // Initializes host copies of this layer's parameters, one span per param_specs() entry.
  virtual void init_params(Rng& /*rng*/, std::span<const std::span<float>> /*params*/) const {}

  // State that is not trained but kept with the model (BatchNorm's running statistics), as
  // PyTorch's buffers: in the model's flat buffer of such state, checkpoints and exports.
  virtual std::vector<ParamSpec> buffer_specs() const { return {}; }
  virtual void bind_buffers(std::span<float* const> /*buffers*/) {}
  virtual void init_buffers(std::span<const std::span<float>> /*buffers*/) const {}

  // Set before forward; layers that behave differently in training (Dropout) keep it.
  virtual void set_pass(const Pass& /*pass*/) {}
  // A rank without rows in a training step (a partial last batch) still joins the collectives that
  // forward and backward would run (Note [batch statistics]), and updates state as they would.
  virtual void forward_without_rows(ComputeBackend& /*backend*/) {}
  virtual void backward_without_rows(ComputeBackend& /*backend*/) {}

  // How many token ids its input holds (Embedding's vocabulary): the data must be whole numbers
  // below it; 0 where the input is values.
  virtual int64_t token_vocabulary() const { return 0; }

  // Note [padding masks]: an embedding with mask_zero (Keras') marks each step whose token id is
  // 0 as padding, a masking layer (Keras' Masking) each step whose features all equal its
  // mask_value; the model hands that mask (batch, steps) of 1 and 0 to the layers above it, set
  // before each forward, until a layer ends it. Recurrent layers skip padding steps (each carries
  // the state before it on, as Keras' RNN layers), passing the mask on when they return every
  // step; dropout passes it on; GlobalAveragePooling1D averages each sample's real steps only.
  // The model builder refuses a mask reaching any other layer.
  virtual void set_input_mask(const float* /*mask*/) {}
  // The mask this layer's output carries after its forward, or null: none.
  virtual const float* output_mask() const { return nullptr; }

  // The layers this one is made of, each with the prefix of its parameters' names, where the
  // model's summary lists them too (a residual block's, Note [residual blocks]); none for most.
  virtual std::vector<std::pair<std::string, const Layer*>> parts() const { return {}; }

  // True when the output is the input reinterpreted (Flatten): the model skips forward/backward.
  virtual bool aliases_input() const { return false; }

  // Keras' layer.trainable = False (Note [frozen layers]): set before the model is made of it.
  void freeze() { frozen_ = true; }
  bool frozen() const { return frozen_; }
  // Keras' kernel_regularizer on the parameter named "weight" (Note [weight penalty]): set before
  // the model is made of it.
  void penalize_weight(float l1, float l2) { weight_penalty_ = {l1, l2}; }
  // `spec`, one of param_specs(), with this layer's weight penalty where it is the weight.
  ParamSpec penalized(ParamSpec spec) const {
    if (spec.name == "weight") std::tie(spec.l1, spec.l2) = weight_penalty_;
    return spec;
  }

  // x: (batch, input shape), y: (batch, output shape)
  virtual void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) = 0;
  // Writes parameter gradients (or adds to them when `accumulate`) and dx (batch, input shape)
  // unless dx is null. dy (batch, output shape) may be overwritten.
  virtual void backward(ComputeBackend& backend, const float* x, const float* y, float* dy,
                        float* dx, int64_t batch, bool accumulate) = 0;

 private:
  bool frozen_ = false;
  std::pair<float, float> weight_penalty_{0, 0};  // (l1, l2)
};

// A layer that works on each position of a sequence alone (dropout, dense, activations, layer
// normalization): its output's padding mask is its input's (Note [padding masks]).
class MaskPassingLayer : public Layer {
 public:
  void set_input_mask(const float* mask) override { mask_ = mask; }
  const float* output_mask() const override { return mask_; }

 private:
  const float* mask_ = nullptr;
};

}  // namespace ddp
