// Note [augmentation layers]: Keras' random layers in model.layers are the training images'
// augmentation (the same draws and images as data.train.augment saying the same), refused by
// name where they could not be, and Keras' configs of them read and written back.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "data/augment.h"
#include "train/config.h"

namespace ddp {
namespace {

// A config of `layers` (YAML flow), with `augment` as data.train.augment where given.
YAML::Node config_of(const std::string& layers, const std::string& augment = "") {
  YAML::Node root = YAML::Load(R"(
data:
  train: {type: synthetic, samples: 10, features: 64, classes: 2}
model:
  input: [8, 8, 1]
loss: sparse_categorical_crossentropy
optimizer: {type: adam}
training: {epochs: 1, global_batch_size: 2}
)");
  root["model"]["layers"] = YAML::Load(layers);
  if (!augment.empty()) root["data"]["train"]["augment"] = YAML::Load(augment);
  return root;
}

std::string config_error(const std::string& layers, const std::string& augment = "") {
  try {
    parse_config(config_of(layers, augment), "aug.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

std::vector<std::string> types_of(const Config& c) {
  std::vector<std::string> types;
  for (const LayerSpec& s : c.layers) types.push_back(s.type);
  return types;
}

TEST(AugmentLayers, AreTheTrainingImagesAugmentation) {
  const Config c = parse_config(config_of(R"([
    {type: rescaling, scale: 0.5, offset: 1},
    {type: random_flip, mode: horizontal},
    {type: random_translation, height_factor: 0.1, width_factor: [-0.2, 0.1],
     interpolation: nearest, fill_mode: constant, fill_value: 3},
    {type: random_rotation, factor: 0.05, fill_mode: constant, fill_value: 3},
    {type: random_zoom, height_factor: [-0.1, 0.2], fill_mode: constant, fill_value: 3},
    {type: flatten}, {type: dense, units: 2, activation: softmax}])"),
                                "aug.yaml");
  EXPECT_EQ(types_of(c), (std::vector<std::string>{"rescaling", "flatten", "dense"}));
  ASSERT_TRUE(c.augment_layers);
  EXPECT_EQ(c.augment_layers->after, 1u);
  EXPECT_EQ(c.augment_layers->path, "model.layers.1");
  EXPECT_EQ(c.augment_layers->types, (std::vector<std::string>{"random_flip", "random_translation",
                                                               "random_rotation", "random_zoom"}));
  const AugmentConfig& a = c.train_data.augment;
  EXPECT_TRUE(a.flip_horizontal);
  EXPECT_FALSE(a.flip_vertical);
  EXPECT_EQ(a.translation_interpolation, "nearest");
  EXPECT_EQ(a.translate_height, (std::array<double, 2>{-0.1, 0.1}));
  EXPECT_EQ(a.translate_width, (std::array<double, 2>{-0.2, 0.1}));
  EXPECT_EQ(a.height_factor + a.width_factor, 0);  // no whole-pixel shifts
  EXPECT_EQ(a.rotation, (std::array<double, 2>{-0.05, 0.05}));
  EXPECT_EQ(a.zoom_height, (std::array<double, 2>{-0.1, 0.2}));
  EXPECT_FALSE(a.zoom_width);
  EXPECT_EQ(a.fill_mode, "constant");
  // Keras fills with 3 after the rescaling: the data's images, before it, with (3 - 1) / 0.5.
  EXPECT_EQ(a.fill_value, 4);
  EXPECT_EQ(c.augment_layers->keras.fill_value, 3);
}

TEST(AugmentLayers, DrawAndChangeImagesAsTheDataAugmentationSayingTheSame) {
  const std::string model_tail = ", {type: flatten}, {type: dense, units: 2}]";
  const Config layers = parse_config(
      config_of(
          "[{type: random_flip, mode: vertical}, {type: random_rotation, factor: [-0.1, "
          "0.2], interpolation: nearest, fill_mode: wrap}, {type: random_zoom, "
          "height_factor: 0.2, width_factor: [0, 0.3], fill_mode: wrap, interpolation: nearest}" +
          model_tail),
      "a.yaml");
  const Config data = parse_config(
      config_of("[{type: flatten}, {type: dense, units: 2}]",
                "{random_flip: vertical, random_rotation: [-0.1, 0.2], random_zoom: "
                "{height_factor: 0.2, width_factor: [0, 0.3]}, interpolation: nearest, "
                "fill_mode: wrap}"),
      "b.yaml");
  EXPECT_EQ(types_of(layers), types_of(data));
  const Augmenter ours(layers.train_data.augment, Shape{8, 8, 1}),
      theirs(data.train_data.augment, Shape{8, 8, 1});
  EXPECT_EQ(ours.describe(), theirs.describe());
  std::vector<float> image(64);
  for (size_t i = 0; i < image.size(); ++i) image[i] = static_cast<float>(i * i % 17);
  int changed = 0;
  for (int64_t position = 0; position < 8; ++position) {
    std::vector<float> a(64), b(64);
    ours.apply(ours.draw(5, position), image.data(), a.data());
    theirs.apply(theirs.draw(5, position), image.data(), b.data());
    EXPECT_EQ(a, b) << position;
    changed += a != image;
  }
  EXPECT_GT(changed, 4);
}

TEST(AugmentLayers, RefusedWhereTheyCannotBeTheAugmentation) {
  EXPECT_EQ(config_error("[{type: dense, units: 4}, {type: random_flip}]"),
            "aug.yaml: model.layers.1.type: random_flip after dense: Keras' random layers are the "
            "training images' augmentation here (Note [augmentation layers]); put them first, or "
            "after rescaling layers only");
  EXPECT_EQ(config_error("[{type: random_rotation, factor: 0.1}, {type: random_flip}]"),
            "aug.yaml: model.layers.1.type: random_flip after random_rotation: the augmentation "
            "applies random_flip, random_translation, random_rotation, random_zoom, "
            "random_contrast and random_brightness in that order, each once");
  EXPECT_NE(config_error("[{type: random_brightness, factor: 0.1}, {type: random_contrast, "
                         "factor: 0.1}]")
                .find("random_contrast after random_brightness: the augmentation applies"),
            std::string::npos);
  EXPECT_EQ(config_error("[{type: random_contrast, factor: 1.5}]"),
            "aug.yaml: model.layers.0.factor: must be in [0, 1], got 1.5");
  EXPECT_EQ(config_error("[{type: random_brightness, factor: 0.1, value_range: [0, 1, 2]}]"),
            "aug.yaml: model.layers.0.value_range: give [low, high]");
  EXPECT_EQ(config_error("[{type: rescaling, scale: -1}, {type: random_contrast, factor: 0.1}]"),
            "aug.yaml: model.layers.0: a rescaling by -1 before Keras' random contrast or "
            "brightness (model.layers.1): their value ranges need a scale > 0 there");
  EXPECT_NE(config_error("[{type: random_flip}, {type: random_flip}]").find("each once"),
            std::string::npos);
  EXPECT_EQ(config_error("[{type: random_flip}, {type: rescaling, scale: 2}, {type: random_zoom, "
                         "height_factor: 0.1}]"),
            "aug.yaml: model.layers.2.type: random_zoom after rescaling, which follows "
            "model.layers.0: put Keras' random layers one after another");
  EXPECT_EQ(config_error("[{type: random_rotation, factor: 0.1, fill_mode: constant}, {type: "
                         "random_zoom, height_factor: 0.1}]"),
            "aug.yaml: model.layers.1.fill_mode: reflect where model.layers.0 (random_rotation) "
            "has constant: the augmentation fills every transform alike (Note [augmentation "
            "layers])");
  EXPECT_EQ(config_error("[{type: random_translation, height_factor: 0, width_factor: 0.1, "
                         "fill_value: 1}, {type: random_zoom, height_factor: 0.1}]"),
            "aug.yaml: model.layers.1.fill_value: 0 where model.layers.0 (random_translation) "
            "has 1: the augmentation fills every transform alike (Note [augmentation layers])");
  EXPECT_EQ(config_error("[{type: random_rotation, factor: 0.1}, {type: random_zoom, "
                         "height_factor: 0.1, interpolation: nearest}]"),
            "aug.yaml: model.layers.1.interpolation: nearest where model.layers.0 "
            "(random_rotation) has bilinear: rotations and zooms resample alike (Note "
            "[augmentation layers])");
  EXPECT_EQ(config_error("[{type: rescaling, scale: 0}, {type: random_rotation, factor: 0.1, "
                         "fill_mode: constant}]"),
            "aug.yaml: model.layers.0: a rescaling by 0 before Keras' random layers with "
            "fill_mode constant (model.layers.1): no image value fills as fill_value there");
  EXPECT_EQ(config_error("[{type: random_translation, height_factor: 1.5, width_factor: 0}]"),
            "aug.yaml: model.layers.0.height_factor: must be in [-1, 1], got 1.5");
  EXPECT_EQ(config_error("[{type: random_flip, mode: diagonal}]"),
            "aug.yaml: model.layers.0.mode: unknown value 'diagonal' (expected one of: "
            "horizontal, vertical, horizontal_and_vertical)");
  EXPECT_EQ(config_error("[{type: random_flip}, {type: flatten}]", "{random_flip: vertical}"),
            "aug.yaml: model.layers.0: Keras' random layers and data.train.augment both augment "
            "the training images: keep one");
  // A rescaling by 0 is fine where nothing fills with a constant.
  EXPECT_EQ(config_error("[{type: rescaling, scale: 0}, {type: random_rotation, factor: 0.1}, "
                         "{type: flatten}, {type: dense, units: 2}]"),
            "no ConfigError");
}

// Keras' RandomContrast's factor f is (0, f) (Keras' lower bound is max(-f, 0)),
// RandomBrightness' (-f, f); value ranges given after a rescaling are mapped back through it.
TEST(AugmentLayers, ContrastAndBrightnessFactorsAndValueRanges) {
  const Config c = parse_config(config_of(R"([
    {type: rescaling, scale: 0.00392156862745098},
    {type: random_contrast, factor: 0.2, value_range: [0, 1]},
    {type: random_brightness, factor: 0.25, value_range: [1, -1]},
    {type: flatten}, {type: dense, units: 2}])"),
                                "aug.yaml");
  const AugmentConfig& a = c.train_data.augment;
  EXPECT_EQ(a.contrast, (std::array<double, 2>{0, 0.2}));
  EXPECT_EQ(a.brightness, (std::array<double, 2>{-0.25, 0.25}));
  EXPECT_NEAR(a.contrast_values[0], 0, 1e-4);  // the rescaling scales by a float
  EXPECT_NEAR(a.contrast_values[1], 255, 1e-4);
  EXPECT_NEAR(a.brightness_values[0], -255, 1e-4);
  EXPECT_NEAR(a.brightness_values[1], 255, 1e-4);
  EXPECT_EQ(c.augment_layers->keras.contrast_values, (std::array<double, 2>{0, 1}));
  const Config listed = parse_config(
      config_of("[{type: random_contrast, factor: [0.3, 0.1]}, {type: flatten}, {type: dense, "
                "units: 2}]"),
      "aug.yaml");
  EXPECT_EQ(listed.train_data.augment.contrast, (std::array<double, 2>{0.1, 0.3}));
  EXPECT_EQ(listed.train_data.augment.contrast_values, (std::array<double, 2>{0, 255}));
  EXPECT_EQ(Augmenter(listed.train_data.augment, Shape{8, 8, 1}).describe(),
            "augmentation: random_contrast x 0.9 to 1.3 (values 0 to 255)");
}

// Keras' JSON of its six random layers, as a Keras 3 model's config.json has them.
const char* const kKerasModel = R"({"class_name": "Sequential", "config": {"layers": [
  {"class_name": "InputLayer", "config": {"batch_shape": [null, 8, 8, 3]}},
  {"class_name": "Rescaling", "config": {"scale": 0.5, "offset": 0.0}},
  {"class_name": "RandomFlip", "config": {"mode": "horizontal", "seed": 7,
                                          "data_format": "channels_last"}},
  {"class_name": "RandomTranslation", "config": {"height_factor": 0.1,
   "width_factor": [-0.2, 0.3], "fill_mode": "nearest", "interpolation": "bilinear",
   "fill_value": 0.0, "seed": null, "data_format": "channels_last"}},
  {"class_name": "RandomRotation", "config": {"factor": [-0.1, 0.1], "fill_mode": "nearest",
   "interpolation": "nearest", "fill_value": 0.0}},
  {"class_name": "RandomZoom", "config": {"height_factor": 0.2, "width_factor": null,
   "fill_mode": "nearest", "interpolation": "nearest", "fill_value": 0.0}},
  {"class_name": "RandomContrast", "config": {"factor": [0.0, 0.2], "value_range": [0, 1]}},
  {"class_name": "RandomBrightness", "config": {"factor": [-0.1, 0.3], "value_range": [0, 1],
   "seed": null}},
  {"class_name": "Flatten", "config": {}},
  {"class_name": "Dense", "config": {"units": 2, "activation": "softmax"}}]}})";

Config config_of_keras(const nlohmann::json& model) {
  const keras::KerasModel read = keras::keras_model_from_config(model, "m.keras", false);
  YAML::Node root(YAML::NodeType::Map);
  root["model"]["input"] = read.input_shape;
  for (const keras::Spec& layer : read.layers) root["model"]["layers"].push_back(layer.node);
  return parse_model_config(root, "m.keras");
}

TEST(AugmentLayers, KerasRandomLayersReadAndWrittenBack) {
  const Config c = config_of_keras(nlohmann::json::parse(kKerasModel));
  EXPECT_EQ(types_of(c), (std::vector<std::string>{"rescaling", "flatten", "dense"}));
  ASSERT_TRUE(c.augment_layers);
  const AugmentConfig& a = c.augment_layers->keras;
  EXPECT_TRUE(a.flip_horizontal && !a.flip_vertical);
  EXPECT_EQ(a.translate_height, (std::array<double, 2>{-0.1, 0.1}));
  EXPECT_EQ(a.translate_width, (std::array<double, 2>{-0.2, 0.3}));
  EXPECT_EQ(a.translation_interpolation, "bilinear");
  EXPECT_EQ(a.interpolation, "nearest");
  EXPECT_EQ(a.fill_mode, "nearest");
  EXPECT_EQ(a.zoom_height, (std::array<double, 2>{-0.2, 0.2}));
  EXPECT_FALSE(a.zoom_width);
  EXPECT_EQ(a.contrast, (std::array<double, 2>{0, 0.2}));
  EXPECT_EQ(a.brightness, (std::array<double, 2>{-0.1, 0.3}));
  EXPECT_EQ(a.brightness_values, (std::array<double, 2>{0, 1}));

  const nlohmann::json written =
      keras::keras_model_config(c.layers, Shape{8, 8, 3}, c.augment_layers);
  std::vector<std::string> classes;
  for (const nlohmann::json& l : written["config"]["layers"]) classes.push_back(l["class_name"]);
  EXPECT_EQ(classes,
            (std::vector<std::string>{"InputLayer", "Rescaling", "RandomFlip", "RandomTranslation",
                                      "RandomRotation", "RandomZoom", "RandomContrast",
                                      "RandomBrightness", "Flatten", "Dense"}));
  const nlohmann::json& translation = written["config"]["layers"][3]["config"];
  EXPECT_EQ(translation["width_factor"], nlohmann::json::parse("[-0.2, 0.3]"));
  EXPECT_EQ(translation["interpolation"], "bilinear");
  EXPECT_EQ(written["config"]["layers"][4]["config"]["interpolation"], "nearest");
  EXPECT_TRUE(written["config"]["layers"][5]["config"]["width_factor"].is_null());
  EXPECT_EQ(written["config"]["layers"][6]["config"]["factor"], nlohmann::json::parse("[0, 0.2]"));
  EXPECT_EQ(written["config"]["layers"][7]["config"]["factor"],
            nlohmann::json::parse("[-0.1, 0.3]"));
  const Config again = config_of_keras(written);
  EXPECT_EQ(types_of(again), types_of(c));
  ASSERT_TRUE(again.augment_layers);
  EXPECT_EQ(again.augment_layers->types, c.augment_layers->types);
  EXPECT_EQ(Augmenter(again.augment_layers->keras, Shape{8, 8, 3}).describe(),
            Augmenter(a, Shape{8, 8, 3}).describe());

  nlohmann::json channels_first = nlohmann::json::parse(kKerasModel);
  channels_first["config"]["layers"][2]["config"]["data_format"] = "channels_first";
  EXPECT_THROW(config_of_keras(channels_first), ConfigError);
}

}  // namespace
}  // namespace ddp
