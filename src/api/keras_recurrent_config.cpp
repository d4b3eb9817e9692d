#include "api/keras_recurrent_config.h"

namespace ddp::keras {

using nlohmann::json;

json keras_object(const std::string& module, const std::string& class_name, json config) {
  return {{"module", module},
          {"class_name", class_name},
          {"config", std::move(config)},
          {"registered_name", nullptr}};
}

std::pair<std::string, json> keras_recurrent_layer(const LayerSpec& s) {
  json c = json::object();
  if (s.bidirectional) {  // Keras' Bidirectional of the one-way layer
    LayerSpec one_way = s;
    one_way.bidirectional = false;
    auto [inner_class, inner] = keras_recurrent_layer(one_way);
    inner["name"] = "forward_" + s.type;
    c["layer"] = keras_object("keras.layers", inner_class, std::move(inner));
    c["merge_mode"] = "concat";
    return {"Bidirectional", c};
  }
  c["units"] = s.units;
  c["use_bias"] = s.use_bias;
  c["return_sequences"] = s.return_sequences;
  for (const char* off : {"return_state", "go_backwards", "stateful"}) c[off] = false;
  c["dropout"] = s.rate;
  c["recurrent_dropout"] = s.recurrent_rate;
  if (s.type == "simple_rnn") {
    c["activation"] = s.activation;
    return {"SimpleRNN", c};
  }
  c["activation"] = "tanh";
  c["recurrent_activation"] = "sigmoid";
  const bool lstm = s.type == "lstm";
  c[lstm ? "unit_forget_bias" : "reset_after"] = true;
  return {lstm ? "LSTM" : "GRU", c};
}

YAML::Node recurrent_layer_spec(const std::string& class_name, const KerasSettings& in) {
  YAML::Node out(YAML::NodeType::Map);
  if (class_name == "Bidirectional") {
    in.require("merge_mode", "concat");
    const json layer = in.required<json>("layer");
    const std::string inner = layer.value("class_name", "");
    if (inner != "LSTM" && inner != "GRU" && inner != "SimpleRNN")
      in.refuse("layer " + inner + " (an LSTM, GRU or SimpleRNN only)");
    const json inner_config = layer.value("config", json::object());
    out.reset(
        recurrent_layer_spec(inner, KerasSettings(inner_config, in.where() + ": its " + inner)));
    // Its backward layer, where given, is the same layer reading the steps the other way.
    const json backward = in.get<json>("backward_layer", nullptr);
    if (!backward.is_null()) {
      json settings = backward.value("config", json::object());
      settings.erase("go_backwards");
      if (backward.value("class_name", "") != inner ||
          YAML::Dump(recurrent_layer_spec(inner, KerasSettings(settings, in.where()))) !=
              YAML::Dump(out))
        in.refuse("backward_layer unlike its layer");
    }
    out["bidirectional"] = true;
    return out;
  }
  const bool lstm = class_name == "LSTM";
  out["type"] = lstm ? "lstm" : class_name == "GRU" ? "gru" : "simple_rnn";
  out["units"] = in.required<int64_t>("units");
  out["return_sequences"] = in.get<bool>("return_sequences", false);
  out["use_bias"] = in.get<bool>("use_bias", true);
  if (class_name == "SimpleRNN") {
    out["activation"] = in.activation(simple_rnn_activation_names(), "tanh");
  } else {
    in.require("activation", "tanh");
    in.require("recurrent_activation", "sigmoid");
    // The LSTM's forget bias starts at 1; the GRU's reset gate scales the recurrent product with
    // its bias (Keras' default, PyTorch's nn.GRU), not the h it multiplies (reset_after false).
    in.require(lstm ? "unit_forget_bias" : "reset_after", true);
  }
  for (const char* off : {"return_state", "go_backwards", "stateful"}) in.require(off, false);
  out["dropout"] = in.get<double>("dropout", 0.0);
  out["recurrent_dropout"] = in.get<double>("recurrent_dropout", 0.0);
  for (const char* none :
       {"kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
        "kernel_constraint", "recurrent_constraint", "bias_constraint"})
    in.require(none, nullptr);
  return out;
}

}  // namespace ddp::keras
