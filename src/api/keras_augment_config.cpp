#include "api/keras_augment_config.h"

#include <array>

namespace ddp::keras {
namespace {

using nlohmann::json;

// Keras' factor: a number, or [lower, upper].
YAML::Node factor(const KerasSettings& in, const char* key) {
  const json f = in.required<json>(key);
  if (f.is_number()) return YAML::Node(f.get<double>());
  if (!f.is_array() || f.size() != 2 || !f[0].is_number() || !f[1].is_number())
    throw ConfigError(in.where() + ": " + key + " " + f.dump() +
                      " is not a number or [lower, upper]");
  YAML::Node range(YAML::NodeType::Sequence);
  for (const json& bound : f) range.push_back(bound.get<double>());
  return range;
}

json range(const std::array<double, 2>& r) { return json::array({r[0], r[1]}); }

}  // namespace

bool is_keras_random_layer(const std::string& class_name) {
  return class_name == "RandomFlip" || class_name == "RandomTranslation" ||
         class_name == "RandomRotation" || class_name == "RandomZoom" ||
         class_name == "RandomContrast" || class_name == "RandomBrightness";
}

YAML::Node random_layer_spec(const std::string& class_name, const KerasSettings& in) {
  YAML::Node out(YAML::NodeType::Map);
  in.channels_last();
  if (class_name == "RandomFlip") {
    out["type"] = "random_flip";
    out["mode"] = in.get<std::string>("mode", "horizontal_and_vertical");
    return out;
  }
  if (class_name == "RandomContrast" || class_name == "RandomBrightness") {
    out["type"] = class_name == "RandomContrast" ? "random_contrast" : "random_brightness";
    out["factor"] = factor(in, "factor");
    out["value_range"] = in.get<std::vector<double>>("value_range", {0, 255});
    return out;
  }
  if (class_name == "RandomTranslation") {
    out["type"] = "random_translation";
    out["height_factor"] = factor(in, "height_factor");
    out["width_factor"] = factor(in, "width_factor");
  } else if (class_name == "RandomRotation") {
    out["type"] = "random_rotation";
    out["factor"] = factor(in, "factor");
  } else {
    out["type"] = "random_zoom";
    out["height_factor"] = factor(in, "height_factor");
    if (!in.get<json>("width_factor", nullptr).is_null())
      out["width_factor"] = factor(in, "width_factor");
  }
  // Keras' defaults; its seed is not needed: the draws come from the training seed.
  out["fill_mode"] = in.get<std::string>("fill_mode", "reflect");
  out["interpolation"] = in.get<std::string>("interpolation", "bilinear");
  out["fill_value"] = in.get<double>("fill_value", 0.0);
  return out;
}

std::vector<std::pair<std::string, json>> keras_random_layers(const AugmentLayers& layers) {
  const AugmentConfig& a = layers.keras;
  std::vector<std::pair<std::string, json>> out;
  for (const std::string& type : layers.types) {
    json c = {{"fill_mode", a.fill_mode}, {"fill_value", a.fill_value}};
    if (type == "random_flip") {
      out.emplace_back("RandomFlip",
                       json{{"mode", !a.flip_vertical     ? "horizontal"
                                     : !a.flip_horizontal ? "vertical"
                                                          : "horizontal_and_vertical"}});
    } else if (type == "random_contrast") {
      out.emplace_back("RandomContrast", json{{"factor", range(*a.contrast)},
                                              {"value_range", range(a.contrast_values)}});
    } else if (type == "random_brightness") {
      out.emplace_back("RandomBrightness", json{{"factor", range(*a.brightness)},
                                                {"value_range", range(a.brightness_values)}});
    } else if (type == "random_translation") {
      c["height_factor"] = range(a.translate_height);
      c["width_factor"] = range(a.translate_width);
      c["interpolation"] = a.translation_interpolation.value_or("bilinear");
      out.emplace_back("RandomTranslation", c);
    } else if (type == "random_rotation") {
      c["factor"] = range(a.rotation);
      c["interpolation"] = a.interpolation;
      out.emplace_back("RandomRotation", c);
    } else {
      c["height_factor"] = range(a.zoom_height);
      c["width_factor"] = a.zoom_width ? range(*a.zoom_width) : json(nullptr);
      c["interpolation"] = a.interpolation;
      out.emplace_back("RandomZoom", c);
    }
    out.back().second["data_format"] = "channels_last";
  }
  return out;
}

}  // namespace ddp::keras
