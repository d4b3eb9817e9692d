#pragma once
// Which Keras variables each of ddp-trainer's layer types has, in Keras' order and layouts, and
// the groups of a Keras weights file (.weights.h5, or inside a .keras file) that hold them.

#include <string>
#include <vector>

#include "keras_weights_file.h"

namespace ddp::python {

// One of a layer's variables in Keras' order: the suffix of its get_weights() name and its layout
// in Keras'.
struct Variable {
  const char* suffix;
  KerasLayout layout;
  bool optional;                // a bias (use_bias: false)
  const char* group = nullptr;  // its group's path below the layer's; null: the layer's own
};

// A recurrent layer's variables are its cell's ("cell", Keras' "lstm_cell", "gru_cell" or
// "simple_rnn_cell"), a Bidirectional's those of its two layers' cells: groups below the layer's,
// each with a vars group of its own named by Keras.
struct Subgroup {
  const char* path;
  const char* name;
};

struct KerasLayer {
  const char* keras_name;  // the snake case of the Keras class
  std::vector<Variable> variables;
  std::vector<Subgroup> subgroups = {};
};

// The Keras variables of a layer type (Sequential::layer_types()' names), or null: none.
const KerasLayer* keras_layer(const std::string& type);

// Each layer with variables: the start of its parameters' names (get_weights()' "layers.3" or
// "layers.3.shortcut.0", Note [parameter names]), its Keras group (Keras' names in Keras' order of
// the layers, _1, _2, ... for a class's later layers), and its variables.
struct KerasGroup {
  std::string prefix;
  std::string name;
  const KerasLayer* layer;
  std::string type;
  // The group of a variable's values.
  std::string vars(const Variable& v) const;
};
std::vector<KerasGroup> keras_groups(const KerasLayers& model_layers);

// A layer's variable v by its get_weights() name, "<prefix>.<suffix>".
std::string variable_name(const std::string& prefix, const Variable& v);

}  // namespace ddp::python
