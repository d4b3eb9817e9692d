#include "keras_variables.h"

#include <map>

#include "core/error.h"

namespace ddp::python {
namespace {

// A recurrent layer's cell's variables in the group `cell`, in Keras' order (kernel, recurrent
// kernel, bias): the forward direction's, or the reverse one's. A GRU's gates in Keras' order, its
// two biases Keras' one (2, 3 units) bias; an LSTM's and a SimpleRNN's as they are.
std::vector<Variable> recurrent_cell(bool gru, const char* cell, bool reverse) {
  static constexpr const char* kLstm[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0"};
  static constexpr const char* kLstmReverse[] = {"weight_ih_l0_reverse", "weight_hh_l0_reverse",
                                                 "bias_ih_l0_reverse"};
  static constexpr const char* kGru[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_hh_l0"};
  static constexpr const char* kGruReverse[] = {"weight_ih_l0_reverse", "weight_hh_l0_reverse",
                                                "bias_ih_hh_l0_reverse"};
  const char* const* names =
      gru ? (reverse ? kGruReverse : kGru) : (reverse ? kLstmReverse : kLstm);
  const int rows = gru ? 0 : -1, bias = gru ? 1 : -1;  // our axis of gate blocks, or none
  return {{names[0], {{1, 0}, rows}, false, cell},
          {names[1], {{1, 0}, rows}, false, cell},
          {names[2], {{}, bias}, true, cell}};
}

// A Bidirectional of a recurrent layer: its two layers (Keras' names) and their cells.
KerasLayer both_directions(bool gru, const char* forward, const char* backward, const char* cell) {
  std::vector<Variable> variables = recurrent_cell(gru, "forward_layer/cell", false);
  for (const Variable& v : recurrent_cell(gru, "backward_layer/cell", true)) variables.push_back(v);
  return {"bidirectional",
          variables,
          {{"forward_layer", forward},
           {"forward_layer/cell", cell},
           {"backward_layer", backward},
           {"backward_layer/cell", cell}}};
}

}  // namespace

const KerasLayer* keras_layer(const std::string& type) {
  static const std::map<std::string, KerasLayer> layers = {
      {"dense", {"dense", {{"weight", {{1, 0}}, false}, {"bias", {}, true}}}},
      {"time_distributed_dense",  // its Dense's variables, in the group "layer"
       {"time_distributed",
        {{"weight", {{1, 0}}, false, "layer"}, {"bias", {}, true, "layer"}},
        {{"layer", "dense"}}}},
      {"conv2d", {"conv2d", {{"weight", {{1, 2, 3, 0}}, false}, {"bias", {}, true}}}},
      {"conv1d", {"conv1d", {{"weight", {{1, 2, 0}}, false}, {"bias", {}, true}}}},
      // Note [depthwise convolution]: (channels, kh, kw, 1) here, (kh, kw, channels, 1) in Keras
      {"depthwise_conv2d",
       {"depthwise_conv2d", {{"weight", {{1, 2, 0, 3}}, false}, {"bias", {}, true}}}},
      // Note [transposed convolution]: the same transpositions of their weights
      {"conv2d_transpose",
       {"conv2d_transpose", {{"weight", {{1, 2, 3, 0}}, false}, {"bias", {}, true}}}},
      {"conv1d_transpose",
       {"conv1d_transpose", {{"weight", {{1, 2, 0}}, false}, {"bias", {}, true}}}},
      {"embedding", {"embedding", {{"weight", {}, false}}}},
      {"lstm", {"lstm", recurrent_cell(false, "cell", false), {{"cell", "lstm_cell"}}}},
      {"gru", {"gru", recurrent_cell(true, "cell", false), {{"cell", "gru_cell"}}}},
      {"simple_rnn",
       {"simple_rnn", recurrent_cell(false, "cell", false), {{"cell", "simple_rnn_cell"}}}},
      {"bidirectional_lstm", both_directions(false, "forward_lstm", "backward_lstm", "lstm_cell")},
      {"bidirectional_gru", both_directions(true, "forward_gru", "backward_gru", "gru_cell")},
      {"bidirectional_simple_rnn",
       both_directions(false, "forward_simple_rnn", "backward_simple_rnn", "simple_rnn_cell")},
      {"batch_normalization",
       {"batch_normalization",
        {{"weight", {}, false},
         {"bias", {}, false},
         {"running_mean", {}, false},
         {"running_var", {}, false}}}},
      {"layer_normalization",
       {"layer_normalization", {{"weight", {}, false}, {"bias", {}, false}}}},
      {"rms_normalization", {"rms_normalization", {{"weight", {}, false}}}}};
  const auto it = layers.find(type);
  return it == layers.end() ? nullptr : &it->second;
}

std::string KerasGroup::vars(const Variable& v) const {
  std::string path = name;
  if (v.group) path.append("/").append(v.group);
  return path.append("/vars");
}

std::vector<KerasGroup> keras_groups(const KerasLayers& model_layers) {
  std::vector<KerasGroup> groups;
  std::map<std::string, int> seen;
  for (const keras::KerasLayerRef& ref : model_layers) {
    if (ref.type == "transformer_encoder" || ref.type == "position_embedding")
      throw ConfigError(ref.type + ": Keras' weights files have no layout for it (KerasHub's " +
                        "layers are not read or written); save the weights as safetensors");
    const KerasLayer* layer = keras_layer(ref.type);
    if (!layer) continue;
    const int earlier = seen[layer->keras_name]++;
    groups.push_back({ref.prefix,
                      "layers/" + std::string(layer->keras_name) +
                          (earlier ? "_" + std::to_string(earlier) : ""),
                      layer, ref.type});
  }
  return groups;
}

std::string variable_name(const std::string& prefix, const Variable& v) {
  return prefix + "." + v.suffix;
}

}  // namespace ddp::python
