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

// Keras' RandomContrast's factor, (lower, upper) for the factors [1 - lower, 1 + upper]: a number
// f in [0, 1] for (0, f) (Keras takes max(-f, 0) as its lower bound), or [lower, upper], each in
// [0, 1].
std::array<double, 2> contrast_factor(ConfigNode& layer) {
  const auto check = [&layer](double f) {
    if (!(f >= 0 && f <= 1)) layer.fail("factor", "must be in [0, 1], got " + show_number(f));
    return f;
  };
  if (!layer.is_list("factor")) return {0, check(layer.require<double>("factor"))};
  const auto range = layer.require<std::vector<double>>("factor");
  if (range.size() != 2) layer.fail("factor", "give a number or [lower, upper], each in [0, 1]");
  return {std::min(check(range[0]), check(range[1])), std::max(range[0], range[1])};
}

// Keras' value_range, [low, high] (its default [0, 255]).
std::array<double, 2> value_range(ConfigNode& layer) {
  const auto range = layer.get<std::vector<double>>("value_range", {0, 255});
  if (range.size() != 2) layer.fail("value_range", "give [low, high]");
  return {std::min(range[0], range[1]), std::max(range[0], range[1])};
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
  static const std::vector<std::string> types = {"random_flip",     "random_translation",
                                                 "random_rotation", "random_zoom",
                                                 "random_contrast", "random_brightness"};
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
                           "random_rotation, random_zoom, random_contrast and random_brightness "
                           "in that order, each once");
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
  } else if (type == "random_contrast") {
    c.contrast = contrast_factor(layer);
    c.contrast_values = value_range(layer);
  } else if (type == "random_brightness") {
    c.brightness = parse_factor_range(layer, "factor", true);
    c.brightness_values = value_range(layer);
  } else {  // random_zoom: Keras' width_factor absent or null keeps the aspect ratio
    c.zoom_height = parse_factor_range(layer, "height_factor", false);
    if (layer.has("width_factor")) c.zoom_width = parse_factor_range(layer, "width_factor", false);
    read_fill(layer, type, true, *into);
  }
}

AugmentConfig data_augment(const AugmentLayers& layers,
                           const std::vector<LayerSpec>& model_layers) {
  AugmentConfig c = layers.keras;
  for (size_t k = layers.after; k-- > 0;) {  // y = x * scale + offset, undone last to first
    const LayerSpec& rescaling = model_layers[k];
    const auto undo = [&rescaling](double y) { return (y - rescaling.offset) / rescaling.scale; };
    if (c.contrast || c.brightness) {  // value ranges: an increasing map keeps their order
      if (!(rescaling.scale > 0))
        throw ConfigError(rescaling.path + ": a rescaling by " + show_number(rescaling.scale) +
                          " before Keras' random contrast or brightness (" + layers.path +
                          "): their value ranges need a scale > 0 there");
      for (std::array<double, 2>* range : {&c.contrast_values, &c.brightness_values})
        *range = {undo((*range)[0]), undo((*range)[1])};
    }
    if (c.fill_mode != "constant") continue;
    if (rescaling.scale == 0)
      throw ConfigError(rescaling.path +
                        ": a rescaling by 0 before Keras' random layers with fill_mode constant "
                        "(" +
                        layers.path + "): no image value fills as fill_value there");
    c.fill_value = static_cast<float>(undo(c.fill_value));
  }
  return c;
}

}  // namespace ddp
