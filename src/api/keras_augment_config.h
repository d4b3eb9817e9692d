#pragma once
// Keras' random image layers in Note [Keras model config] (Note [augmentation layers]):
// RandomFlip, RandomTranslation, RandomRotation, RandomZoom, RandomContrast and RandomBrightness
// as random_flip, ... layer configs,
// and the model's augmentation back as those layers.

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "api/keras_settings.h"
#include "train/augment_layers.h"

namespace ddp::keras {

// Whether `class_name` is one of the six.
bool is_keras_random_layer(const std::string& class_name);
// The layer config of one of them; ConfigError naming what is refused.
YAML::Node random_layer_spec(const std::string& class_name, const KerasSettings& in);
// The Keras classes and settings of Keras' random layers (`augment`: their types and
// augmentation, in their own terms), in order.
std::vector<std::pair<std::string, nlohmann::json>> keras_random_layers(
    const AugmentLayers& augment);

}  // namespace ddp::keras
