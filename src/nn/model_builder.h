#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/sequential.h"

namespace ddp {

// One entry of the config's model.layers list.
struct LayerSpec {
  std::string type;  // dense, relu, tanh, sigmoid, softmax, flatten
  int64_t units = 0;
  std::string activation = "linear";  // dense only: linear, relu, tanh, sigmoid, softmax
  std::string path;                   // "run.yaml: model.layers.2", for error messages
};

const std::vector<std::string>& layer_types();
const std::vector<std::string>& activation_names();

// Throws ConfigError naming the layer's key path when a layer cannot follow its input.
std::unique_ptr<Sequential> build_sequential(ComputeBackend& backend, const Shape& input,
                                             const std::vector<LayerSpec>& specs);

}  // namespace ddp
