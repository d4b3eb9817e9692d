#pragma once
// Note [augmentation layers]: Keras' RandomFlip, RandomTranslation, RandomRotation, RandomZoom,
// RandomContrast and RandomBrightness as layers of the model (types random_flip,
// random_translation, random_rotation, random_zoom, random_contrast and random_brightness, with
// Keras' keys), as Keras models and tutorials have them. In Keras they change each training image
// by a draw of its own and pass images through unchanged in inference; that is what the training
// data's augmentation does (Note [augmentation]), so here they are that augmentation and no layers
// of the model: each image drawn from (seed, epoch, position), N ranks augment what one does.
// Hence where they may stand: first, or after rescaling layers only (rescaling commutes with
// flips and resampling, which mix pixels with weights summing to 1, and with contrast and
// brightness: a constant fill_value and the value ranges are mapped back through the rescalings;
// a scale of 0 is refused, and one below 0 with contrast or brightness), one after another, in
// the order the augmentation applies them (flip, translation, rotation, zoom, contrast,
// brightness), each once. Translation, rotation and zoom share one fill_mode and fill_value,
// rotation and zoom one interpolation; RandomTranslation's shifts are Keras' (fractions of a
// pixel, resampled with its own interpolation), not data.train.augment's whole pixels, and
// RandomContrast's factor f is Keras' too: factors [1, 1 + f] (Keras' lower bound is max(-f, 0)).
// Anything else is refused naming the key.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "data/augment.h"
#include "nn/model_builder.h"

namespace ddp {

class ConfigNode;

struct AugmentLayers {
  AugmentConfig keras;  // as the layers say it: fill_value as the images after the rescalings
  size_t after = 0;     // the (rescaling) layers before them
  std::string path;     // the first one's, "model.layers[1]", for messages
  std::vector<std::string> types;  // in order, one for each of the model's layers
  // While reading: the paths of the layers that gave the fill and the interpolation, empty before
  // one has.
  std::string fill_from, interpolation_from;
};

// random_flip, random_translation, random_rotation, random_zoom, random_contrast,
// random_brightness.
const std::vector<std::string>& augment_layer_types();
bool is_augment_layer(const std::string& type);

// Reads `layer`, of type `type`, into `into`; `before`: the model's layers read before it.
// ConfigError naming the key where it cannot be the augmentation.
void parse_augment_layer(ConfigNode& layer, const std::string& type,
                         const std::vector<LayerSpec>& before, std::optional<AugmentLayers>& into);

// The augmentation of the images as the data hold them: the layers' fill_value mapped back
// through the `model_layers` (rescalings) before them.
AugmentConfig data_augment(const AugmentLayers& layers, const std::vector<LayerSpec>& model_layers);

}  // namespace ddp
