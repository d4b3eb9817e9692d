#include "train/augment_layers.h"

#include <algorithm>
#include <type_traits>

#include "core/error.h"
#include "train/config_reader.h"

namespace ddp {
namespace {

// `value` of the layer's `key`, which the layers before it that have one (`from`, empty before
// one has) give as `held`; `why` the message's reason where they differ.
template <class T>
void agree(ConfigNode& layer, const std::string& type, const std::string& key, const T& value,
           T& held, std::string& from, const std::string& why) {
  const auto show = [](const T& v) {
    if constexpr (std::is_same_v<T, std::string>)
      return v;
    else
      return show_number(v);
  };
  if (from.empty()) {
    held = value;
    from = layer.path() + " (" + type + ")";
  } else if (value != held) {
    layer.fail(key, show(value) + " where " + from + " has " + show(held) + ": " + why +
                        " (Note [augmentation layers])");
  }
}

// The layer's fill_mode and fill_value, and with `interpolated` its interpolation, which must be
// those of the layers before it that have them.
void read_fill(ConfigNode& layer, const std::string& type, bool interpolated, AugmentLayers& into) {
  AugmentConfig& c = into.keras;
  const std::string fills = "the augmentation fills every transform alike";
  std::string mode_from = into.fill_from;  // the two keys come from the same layer
  agree(layer, type, "fill_mode",
        layer.choice("fill_mode", {"reflect", "constant", "nearest", "wrap"}, "reflect"),
        c.fill_mode, mode_from, fills);
  agree(layer, type, "fill_value", static_cast<float>(layer.get("fill_value", 0.0)), c.fill_value,
        into.fill_from, fills);
  if (interpolated)
    agree(layer, type, "interpolation",
          layer.choice("interpolation", {"bilinear", "nearest"}, "bilinear"), c.interpolation,
          into.interpolation_from, "rotations and zooms resample alike");
}

}  // namespace

const std::vector<std::string>& augment_layer_types() {
  static const std::vector<std::string> types = {"random_flip", "random_translation",
                                                 "random_rotation", "random_zoom"};
  return types;
}

bool is_augment_layer(const std::string& type) {
  const auto& types = augment_layer_types();
  return std::find(types.begin(), types.end(), type) != types.end();
}

void parse_augment_layer(ConfigNode& layer, const std::string& type,
                         const std::vector<LayerSpec>& before, std::optional<AugmentLayers>& into) {
  const auto other = std::find_if(before.begin(), before.end(),
                                  [](const LayerSpec& s) { return s.type != "rescaling"; });
  if (other != before.end())
    layer.fail("type", type + " after " + other->type +
                           ": Keras' random layers are the training images' augmentation here "
                           "(Note [augmentation layers]); put them first, or after rescaling "
                           "layers only");
  if (!into) {
    into.emplace();
    into->after = before.size();
    into->path = layer.path();
  }
  if (before.size() != into->after)
    layer.fail("type", type + " after rescaling, which follows " + into->path +
                           ": put Keras' random layers one after another");
  const auto& order = augment_layer_types();
  const auto place = [&order](const std::string& t) {
    return std::find(order.begin(), order.end(), t) - order.begin();
  };
  if (!into->types.empty() && place(type) <= place(into->types.back()))
    layer.fail("type", type + " after " + into->types.back() +
                           ": the augmentation applies random_flip, random_translation, "
                           "random_rotation and random_zoom in that order, each once");
  into->types.push_back(type);
  AugmentConfig& c = into->keras;
  if (type == "random_flip") {  // Keras' default mode
    const std::string mode = layer.choice(
        "mode", {"horizontal", "vertical", "horizontal_and_vertical"}, "horizontal_and_vertical");
    c.flip_horizontal = mode != "vertical";
    c.flip_vertical = mode != "horizontal";
  } else if (type == "random_translation") {
    c.translate_height = parse_factor_range(layer, "height_factor", true);
    c.translate_width = parse_factor_range(layer, "width_factor", true);
    c.translation_interpolation =
        layer.choice("interpolation", {"bilinear", "nearest"}, "bilinear");
    read_fill(layer, type, false, *into);
  } else if (type == "random_rotation") {
    c.rotation = parse_factor_range(layer, "factor", true);
    read_fill(layer, type, true, *into);
  } else {  // random_zoom: Keras' width_factor absent or null keeps the aspect ratio
    c.zoom_height = parse_factor_range(layer, "height_factor", false);
    if (layer.has("width_factor")) c.zoom_width = parse_factor_range(layer, "width_factor", false);
    read_fill(layer, type, true, *into);
  }
}

AugmentConfig data_augment(const AugmentLayers& layers,
                           const std::vector<LayerSpec>& model_layers) {
  AugmentConfig c = layers.keras;
  if (c.fill_mode != "constant") return c;
  for (size_t k = layers.after; k-- > 0;) {  // y = x * scale + offset, undone last to first
    const LayerSpec& rescaling = model_layers[k];
    if (rescaling.scale == 0)
      throw ConfigError(rescaling.path +
                        ": a rescaling by 0 before Keras' random layers with fill_mode constant "
                        "(" +
                        layers.path + "): no image value fills as fill_value there");
    c.fill_value = (c.fill_value - rescaling.offset) / rescaling.scale;
  }
  return c;
}

}  // namespace ddp
