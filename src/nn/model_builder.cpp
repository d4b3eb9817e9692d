#include "nn/model_builder.h"

#include "core/error.h"
#include "core/machine.h"
#include "nn/activation.h"
#include "nn/dense.h"
#include "nn/flatten.h"
#include "nn/softmax.h"

namespace ddp {

const std::vector<std::string>& layer_types() {
  static const std::vector<std::string> types = {"dense",   "relu",    "tanh",
                                                 "sigmoid", "softmax", "flatten"};
  return types;
}

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = {"linear", "relu", "tanh", "sigmoid", "softmax"};
  return names;
}

namespace {

Activation elementwise(const std::string& name) {
  if (name == "relu") return Activation::kRelu;
  if (name == "tanh") return Activation::kTanh;
  if (name == "sigmoid") return Activation::kSigmoid;
  return Activation::kLinear;
}

}  // namespace

std::unique_ptr<Sequential> build_sequential(ComputeBackend& backend, const Shape& input,
                                             const std::vector<LayerSpec>& specs) {
  std::vector<std::unique_ptr<Layer>> layers;
  Shape shape = input;
  // Every parameter costs 16 bytes to train (weight, gradient, two optimizer moments): a model
  // that cannot fit is refused naming the layer, before anything is allocated.
  const uint64_t budget = memory_limit_bytes() / 16;
  uint64_t parameters = 0;
  for (const LayerSpec& spec : specs) {
    if (spec.type == "dense") {
      if (shape.rank() != 1)
        throw ConfigError(spec.path + ": dense needs a flat input but gets " + shape.str() +
                          "; add {type: flatten} before it");
      if (spec.units <= 0)
        throw ConfigError(spec.path + ".units: must be > 0, got " + std::to_string(spec.units));
      const auto fan_in = static_cast<uint64_t>(shape[0]) + 1;  // weights and bias per unit
      const auto units = static_cast<uint64_t>(spec.units);
      if (units > (budget - parameters) / fan_in)
        throw ConfigError(spec.path + ".units: " + std::to_string(spec.units) + " units of " +
                          std::to_string(fan_in - 1) + " inputs take the model past " +
                          std::to_string(budget) + " parameters, what this process's " +
                          std::to_string(memory_limit_bytes() >> 20) +
                          " MiB can train (16 bytes each)");
      parameters += units * fan_in;
      const bool softmax = spec.activation == "softmax";
      layers.push_back(std::make_unique<Dense>(
          shape[0], spec.units, softmax ? Activation::kLinear : elementwise(spec.activation)));
      if (softmax) layers.push_back(std::make_unique<Softmax>(layers.back()->output_shape()));
    } else if (spec.type == "flatten") {
      layers.push_back(std::make_unique<Flatten>(shape));
    } else if (spec.type == "softmax") {
      layers.push_back(std::make_unique<Softmax>(shape));
    } else {
      layers.push_back(std::make_unique<ActivationLayer>(elementwise(spec.type), shape));
    }
    shape = layers.back()->output_shape();
  }
  return std::make_unique<Sequential>(backend, input, std::move(layers));
}

}  // namespace ddp
