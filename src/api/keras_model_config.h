#pragma once
// Note [Keras model config]: Keras 3's description of a Sequential (the config.json of a .keras
// file, model.to_json()) for ddp-trainer's layers, so that keras.models.load_model rebuilds the
// model that ddp-trainer trained: an InputLayer of one sample's shape, then each layer as its
// Keras class (dense -> Dense, conv2d -> Conv2D, max_pooling2d -> MaxPooling2D, ..., relu ->
// Activation("relu")) with the settings ddp-trainer trains by, named as Keras names layers
// (dense, dense_1, ...). Keras fills in the settings left out with its defaults, which are the
// ones ddp-trainer's layers have (glorot/zeros initializers only matter before training).
// And back: a Keras Sequential's config (and its compile_config) as the API's Specs, where each
// layer is one ddp-trainer has with settings it trains by; anything else is refused by name. A
// model with residual blocks is a Keras functional model both ways (Note [Keras functional
// models]).

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "api/keras.h"
#include "api/keras_functional.h"

#include "core/shape.h"
#include "nn/model_builder.h"
#include "train/augment_layers.h"
#include "train/optimizer_config.h"

namespace ddp::keras {

// `input`: one sample's shape, as the model takes it (model.input); `augment`: Keras' random
// layers among them (Note [augmentation layers]).
nlohmann::json keras_model_config(const std::vector<LayerSpec>& layers, const Shape& input,
                                  const std::optional<AugmentLayers>& augment = std::nullopt);

// A Keras layer ({"class_name", "config": get_config()}) as the API's layer Spec (none for the
// identity: a linear Activation), or an InputLayer's sample shape. Throws ConfigError
// "<where> (Class): ..." for what ddp-trainer cannot train.
struct KerasLayer {
  std::optional<Spec> spec;
  std::vector<int64_t> input_shape;
};
KerasLayer keras_layer(const nlohmann::json& layer, const std::string& where);

// What a Keras config describes: the input shape and layers, and what compile() was given.
struct KerasModel {
  std::vector<int64_t> input_shape;
  std::vector<Spec> layers;
  std::optional<Spec> optimizer;  // with compile_config, when it has one ddp-trainer has
  std::optional<Spec> loss;
  std::vector<std::string> metrics;
  // Its layers with parameters in the order of Keras' model.layers (Note [Keras functional
  // models]), which its weights file names and orders them by.
  std::vector<KerasLayerRef> keras_layers;
};
// `config`: config.json's object; `compile`: whether to read its compile_config too. Throws
// ConfigError "<origin>: config.json: layers[k] (Class): ..." for what ddp-trainer cannot train.
KerasModel keras_model_from_config(const nlohmann::json& config, const std::string& origin,
                                   bool compile);
// A Functional model's input shape and layers, into `model` (Note [Keras functional models]);
// `where` names the config in errors.
void read_functional_layers(const nlohmann::json& config, const std::string& where,
                            KerasModel& model);

// A Keras optimizer's description (compile_config's "optimizer": its name, or {"class_name",
// "config": get_config()}) as the API's Spec, when it is one ddp-trainer has with settings it
// trains by (Keras' RMSprop by Keras' rule). Throws ConfigError "<where>: the optimizer ..."
// naming what it cannot, and `otherwise` after the message for an optimizer it does not have.
Spec keras_optimizer(const nlohmann::json& optimizer, const std::string& where,
                     const std::string& otherwise = "");

// A Keras loss (compile_config's "loss": its name, or {"class_name", "config": get_config()} of
// keras.losses' SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy and
// MeanSquaredError) as the API's Spec; ConfigError "<where>: the loss ..." naming what ddp-trainer
// cannot train by (`otherwise` after the message for a loss it does not have).
Spec keras_loss(const nlohmann::json& loss, const std::string& where,
                const std::string& otherwise = "");
// A Keras metric (compile_config's "metrics" entries: a name, or {"class_name", "config"} of
// keras.metrics' SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy and
// MeanAbsoluteError under their own names) as the name of ddp-trainer's metric that keeps its
// count; ConfigError "<where>: the metric ..." otherwise (`otherwise` after the message for a
// metric it does not have).
std::string keras_metric(const nlohmann::json& metric, const std::string& where,
                         const std::string& otherwise = "");
// The reverse, for compile_config: the loss's name, or Keras' loss object where it has settings
// (from_logits, label_smoothing); null where Keras has no form of it (weights per class or label).
nlohmann::json keras_loss_json(const YAML::Node& loss);

// The reverse, for compile_config: the optimizer as Keras serializes it (keras.optimizers
// .serialize), where it trains by Keras' rule with a rate or schedule Keras has; null otherwise.
nlohmann::json keras_optimizer_json(const OptimizerConfig& optimizer);

}  // namespace ddp::keras
