#pragma once
// Note [Keras model config]: Keras 3's description of a Sequential (the config.json of a .keras
// file, model.to_json()) for ddp-trainer's layers, so that keras.models.load_model rebuilds the
// model that ddp-trainer trained: an InputLayer of one sample's shape, then each layer as its
// Keras class (dense -> Dense, conv2d -> Conv2D, max_pooling2d -> MaxPooling2D, ..., relu ->
// Activation("relu")) with the settings ddp-trainer trains by, named as Keras names layers
// (dense, dense_1, ...). Keras fills in the settings left out with its defaults, which are the
// ones ddp-trainer's layers have (glorot/zeros initializers only matter before training).

#include <nlohmann/json.hpp>

#include <vector>

#include "core/shape.h"
#include "nn/model_builder.h"

namespace ddp::keras {

// `input`: one sample's shape, as the model takes it (model.input).
nlohmann::json keras_model_config(const std::vector<LayerSpec>& layers, const Shape& input);

}  // namespace ddp::keras
