#include "nn/model_builder.h"

#include "core/error.h"
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
  for (const LayerSpec& spec : specs) {
    if (spec.type == "dense") {
      if (shape.rank() != 1)
        throw ConfigError(spec.path + ": dense needs a flat input but gets " + shape.str() +
                          "; add {type: flatten} before it");
      if (spec.units <= 0)
        throw ConfigError(spec.path + ".units: must be > 0, got " + std::to_string(spec.units));
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
