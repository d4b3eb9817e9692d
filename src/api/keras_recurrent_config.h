#pragma once
// Keras' recurrent layers in Note [Keras model config]: an lstm, gru or simple_rnn layer as Keras'
// LSTM, GRU or SimpleRNN, or as its Bidirectional wrapper (merge_mode "concat") when
// bidirectional, and back.

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <string>
#include <utility>

#include "api/keras_settings.h"
#include "nn/model_builder.h"

namespace ddp::keras {

// Keras' serialized object: {"module", "class_name", "config", "registered_name"}.
nlohmann::json keras_object(const std::string& module, const std::string& class_name,
                            nlohmann::json config);

// The Keras class of a recurrent layer, and its settings.
std::pair<std::string, nlohmann::json> keras_recurrent_layer(const LayerSpec& recurrent);
// The recurrent layer's config of a Keras LSTM, GRU, SimpleRNN or Bidirectional; ConfigError
// naming what is refused.
YAML::Node recurrent_layer_spec(const std::string& class_name, const KerasSettings& in);

}  // namespace ddp::keras
