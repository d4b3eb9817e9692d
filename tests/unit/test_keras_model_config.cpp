// Note [Keras model config]: the config.json that Keras rebuilds a model from (keras_module loads
// it in Keras itself, where Keras is installed).

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "train/config.h"

namespace ddp {
namespace {

LayerSpec layer(const std::string& type) {
  LayerSpec s;
  s.type = type;
  return s;
}

TEST(KerasModelConfig, EachLayerAsItsKerasClassWithKerasNames) {
  LayerSpec conv = layer("conv2d");
  conv.units = 4;
  conv.window = {3, 2};
  conv.strides = {1, 2};
  conv.same_padding = true;
  conv.activation = "relu";
  conv.use_bias = false;
  conv.l2 = 0.5f;
  LayerSpec pool = layer("max_pooling2d");
  pool.window = pool.strides = {2, 2};
  LayerSpec norm = layer("batch_normalization");
  norm.momentum = 0.9f;
  norm.sync = true;
  LayerSpec drop = layer("dropout");
  drop.rate = 0.25f;
  LayerSpec hidden = layer("dense");
  hidden.units = 8;
  LayerSpec out = hidden;
  out.units = 3;
  const nlohmann::json model = keras::keras_model_config(
      {conv, norm, pool, layer("flatten"), drop, hidden, layer("tanh"), out, layer("softmax")},
      Shape({6, 6, 2}));
  EXPECT_EQ(model["class_name"], "Sequential");
  EXPECT_EQ(model["build_config"]["input_shape"], nlohmann::json::parse("[null, 6, 6, 2]"));
  const nlohmann::json& layers = model["config"]["layers"];
  ASSERT_EQ(layers.size(), 10u);
  std::vector<std::string> classes, names;
  for (const nlohmann::json& l : layers) {
    classes.push_back(l["class_name"]);
    names.push_back(l["config"]["name"]);
    EXPECT_EQ(l["module"], "keras.layers");
  }
  EXPECT_EQ(classes, (std::vector<std::string>{"InputLayer", "Conv2D", "BatchNormalization",
                                               "MaxPooling2D", "Flatten", "Dropout", "Dense",
                                               "Activation", "Dense", "Activation"}));
  EXPECT_EQ(names, (std::vector<std::string>{"input_layer", "conv2d", "batch_normalization",
                                             "max_pooling2d", "flatten", "dropout", "dense",
                                             "activation", "dense_1", "activation_1"}));
  EXPECT_EQ(layers[0]["config"]["batch_shape"], nlohmann::json::parse("[null, 6, 6, 2]"));
  const nlohmann::json& c = layers[1]["config"];
  EXPECT_EQ(c["filters"], 4);
  EXPECT_EQ(c["kernel_size"], nlohmann::json::parse("[3, 2]"));
  EXPECT_EQ(c["strides"], nlohmann::json::parse("[1, 2]"));
  EXPECT_EQ(c["padding"], "same");
  EXPECT_EQ(c["activation"], "relu");
  EXPECT_EQ(c["use_bias"], false);
  EXPECT_EQ(c["kernel_regularizer"]["class_name"], "L1L2");
  EXPECT_EQ(c["kernel_regularizer"]["config"]["l2"], 0.5);
  EXPECT_FLOAT_EQ(layers[2]["config"]["momentum"].get<float>(), 0.9f);
  EXPECT_EQ(layers[2]["config"]["synchronized"], true);
  EXPECT_EQ(layers[3]["config"]["pool_size"], nlohmann::json::parse("[2, 2]"));
  EXPECT_FLOAT_EQ(layers[5]["config"]["rate"].get<float>(), 0.25f);
  EXPECT_EQ(layers[6]["config"]["units"], 8);
  EXPECT_EQ(layers[6]["config"]["activation"], "linear");
  EXPECT_FALSE(layers[6]["config"].contains("kernel_regularizer"));
  EXPECT_EQ(layers[7]["config"]["activation"], "tanh");
  EXPECT_EQ(layers[9]["config"]["activation"], "softmax");
}

// Keras' Rescaling, both ways; a scale per channel is not had.
TEST(KerasModelConfig, RescalingAsKerasRescaling) {
  LayerSpec rescaling = layer("rescaling");
  rescaling.scale = 0.5f;
  rescaling.offset = -1;
  const nlohmann::json described =
      keras::keras_model_config({rescaling, layer("dense")}, Shape({4}))["config"]["layers"][1];
  EXPECT_EQ(described["class_name"], "Rescaling");
  EXPECT_EQ(described["config"]["scale"], 0.5);
  EXPECT_EQ(described["config"]["offset"], -1);
  const keras::KerasLayer back = keras::keras_layer(described, "m.keras: layers[1]");
  ASSERT_TRUE(back.spec.has_value());
  EXPECT_EQ(back.spec->node["scale"].as<double>(), 0.5);
  EXPECT_EQ(back.spec->node["offset"].as<double>(), -1);
  nlohmann::json per_channel = described;
  per_channel["config"]["scale"] = {0.5, 0.25, 1};
  EXPECT_THROW(keras::keras_layer(per_channel, "m.keras: layers[1]"), ConfigError);
}

// GELU's tanh form has no name in Keras (its gelu(x, approximate=True) is a call): refused by name,
// whether a dense layer's activation or a layer of its own.
TEST(KerasModelConfig, GeluTanhIsNotWrittenToKerasConfigs) {
  LayerSpec dense = layer("dense"), own = layer("gelu_tanh");
  dense.activation = "gelu_tanh";
  dense.path = own.path = "model.layers.0";
  for (const LayerSpec& s : {dense, own}) {
    try {
      keras::keras_model_config({s}, Shape({4}));
      ADD_FAILURE() << s.type << " with gelu_tanh was written";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()),
                "model.layers.0: gelu_tanh has no name in Keras' configs; save the weights "
                "(save_weights, safetensors) instead");
    }
  }
}

// Keras' LeakyReLU both ways; its ReLU with a negative slope is one; Keras' activation function
// "leaky_relu" (as a layer too) has the slope 0.2, the layer's default 0.3.
TEST(KerasModelConfig, LeakyReluAsKerasLeakyRelu) {
  LayerSpec leaky = layer("leaky_relu");
  leaky.negative_slope = 0.125f;
  const nlohmann::json described =
      keras::keras_model_config({layer("dense"), leaky}, Shape({4}))["config"]["layers"][2];
  EXPECT_EQ(described["class_name"], "LeakyReLU");
  EXPECT_EQ(described["config"]["negative_slope"], 0.125);
  const auto slope_of = [](const nlohmann::json& keras) {
    const keras::KerasLayer back = keras::keras_layer(keras, "m.keras: layers[2]");
    EXPECT_EQ(back.spec->node["type"].as<std::string>(), "leaky_relu");
    return back.spec->node["negative_slope"].as<double>();
  };
  EXPECT_EQ(slope_of(described), 0.125);
  EXPECT_EQ(slope_of({{"class_name", "LeakyReLU"}, {"config", nlohmann::json::object()}}), 0.3);
  EXPECT_EQ(slope_of({{"class_name", "ReLU"},
                      {"config", {{"negative_slope", 0.05}, {"max_value", nullptr}}}}),
            0.05);
  EXPECT_FLOAT_EQ(
      slope_of({{"class_name", "Activation"}, {"config", {{"activation", "leaky_relu"}}}}), 0.2f);
  // Keras' ELU layer of alpha 1 is the elu activation, and ReLU(max_value=6), as MobileNets write
  // it, is relu6; another alpha or cap is refused.
  struct Read {
    const char* class_name;
    const char* key;
    double accepted, refused;
    const char* type;
  };
  for (const Read& r :
       {Read{"ELU", "alpha", 1.0, 0.5, "elu"}, Read{"ReLU", "max_value", 6.0, 4.0, "relu6"}}) {
    nlohmann::json keras = {{"class_name", r.class_name}, {"config", {{r.key, r.accepted}}}};
    EXPECT_EQ(keras::keras_layer(keras, "m.keras: layers[2]").spec->node["type"].as<std::string>(),
              r.type);
    keras["config"][r.key] = r.refused;
    EXPECT_THROW(keras::keras_layer(keras, "m.keras: layers[2]"), ConfigError) << r.class_name;
  }
}

TEST(KerasModelConfig, LayerNormalizationAsKerasLayerNormalization) {
  LayerSpec norm = layer("layer_normalization");
  norm.epsilon = 0.25f;
  const nlohmann::json described =
      keras::keras_model_config({layer("dense"), norm}, Shape({4}))["config"]["layers"][2];
  EXPECT_EQ(described["class_name"], "LayerNormalization");
  EXPECT_EQ(described["config"]["epsilon"], 0.25);
  EXPECT_EQ(described["config"]["axis"], -1);
  const keras::KerasLayer back = keras::keras_layer(described, "m.keras: layers[2]");
  EXPECT_EQ(back.spec->node["type"].as<std::string>(), "layer_normalization");
  EXPECT_EQ(back.spec->node["epsilon"].as<double>(), 0.25);
  for (const auto& [key, value] : {std::pair<const char*, nlohmann::json>{"rms_scaling", true},
                                   {"center", false},
                                   {"axis", nlohmann::json::array({1, 2})}}) {
    nlohmann::json changed = described;
    changed["config"][key] = value;
    EXPECT_THROW(keras::keras_layer(changed, "m.keras: layers[2]"), ConfigError) << key;
  }
}

// Note [frozen layers]: Keras' trainable, both ways; on a layer without weights it does nothing.
TEST(KerasModelConfig, FrozenLayersAsKerasTrainableFalse) {
  LayerSpec frozen = layer("dense");
  frozen.trainable = false;
  const nlohmann::json described = keras::keras_model_config(
      {layer("dense"), frozen, layer("flatten")}, Shape({4}))["config"]["layers"];
  EXPECT_EQ(described[1]["config"]["trainable"], true);
  EXPECT_EQ(described[2]["config"]["trainable"], false);
  const auto trainable = [](nlohmann::json keras) {
    const YAML::Node back = keras::keras_layer(keras, "m.keras: layers[2]").spec->node;
    return back["trainable"] ? back["trainable"].as<bool>() : true;
  };
  EXPECT_FALSE(trainable(described[2]));
  EXPECT_TRUE(trainable(described[1]));
  nlohmann::json flatten = described[3];
  flatten["config"]["trainable"] = false;
  EXPECT_FALSE(keras::keras_layer(flatten, "m.keras: layers[3]").spec->node["trainable"]);
}

// Note [AUC]: Keras' AUC object with its defaults (as get_config() gives them) is the auc metric;
// any other curve, threshold count, multi-label form or logits input is refused by name.
TEST(KerasModelConfig, AucObjectIsTheAucMetric) {
  const nlohmann::json auc = nlohmann::json::parse(R"({"class_name": "AUC", "config": {
    "name": "auc", "dtype": "float32", "num_thresholds": 200, "curve": "ROC",
    "summation_method": "interpolation", "multi_label": false, "num_labels": null,
    "label_weights": null, "from_logits": false}})");
  EXPECT_EQ(keras::keras_metric(auc, "compile", ""), "auc");
  for (const auto& [key, value] : {std::pair<const char*, nlohmann::json>{"curve", "PR"},
                                   {"num_thresholds", 100},
                                   {"multi_label", true},
                                   {"from_logits", true},
                                   {"name", "auc_1"}}) {
    nlohmann::json changed = auc;
    changed["config"][key] = value;
    EXPECT_THROW(keras::keras_metric(changed, "compile", ""), ConfigError) << key;
  }
}

// Embedding (with its mask_zero) and the global poolings both ways.
TEST(KerasModelConfig, EmbeddingAsKerasEmbedding) {
  LayerSpec embedding = layer("embedding");
  embedding.vocabulary = 50;
  embedding.units = 8;
  const nlohmann::json described =
      keras::keras_model_config({embedding, layer("global_average_pooling1d"), layer("dense")},
                                Shape({12}))["config"]["layers"];
  EXPECT_EQ(described[1]["class_name"], "Embedding");
  EXPECT_EQ(described[1]["config"]["name"], "embedding");
  EXPECT_EQ(described[1]["config"]["input_dim"], 50);
  EXPECT_EQ(described[1]["config"]["output_dim"], 8);
  EXPECT_EQ(described[2]["class_name"], "GlobalAveragePooling1D");
  EXPECT_EQ(described[2]["config"]["name"], "global_average_pooling1d");
  const YAML::Node back = keras::keras_layer(described[1], "m.keras: layers[1]").spec->node;
  EXPECT_EQ(back["type"].as<std::string>(), "embedding");
  EXPECT_EQ(back["input_dim"].as<int64_t>(), 50);
  EXPECT_EQ(back["output_dim"].as<int64_t>(), 8);
  EXPECT_EQ(
      keras::keras_layer(described[2], "m.keras: layers[2]").spec->node["type"].as<std::string>(),
      "global_average_pooling1d");
  for (const auto& [type, class_name] : {std::pair{"global_max_pooling1d", "GlobalMaxPooling1D"},
                                         {"global_max_pooling2d", "GlobalMaxPooling2D"},
                                         {"global_average_pooling2d", "GlobalAveragePooling2D"}}) {
    const nlohmann::json keras =
        keras::keras_model_config({layer(type)}, Shape({4, 4, 2}))["config"]["layers"][1];
    EXPECT_EQ(keras["class_name"], class_name);
    EXPECT_EQ(keras::keras_layer(keras, "m.keras").spec->node["type"].as<std::string>(), type);
  }
  LayerSpec conv1d = layer("conv1d");
  conv1d.units = 6;
  conv1d.window = {1, 5};
  conv1d.strides = {1, 2};
  conv1d.same_padding = true;
  conv1d.activation = "relu";
  const nlohmann::json keras_conv =
      keras::keras_model_config({conv1d}, Shape({12, 8}))["config"]["layers"][1];
  EXPECT_EQ(keras_conv["class_name"], "Conv1D");
  EXPECT_EQ(keras_conv["config"]["kernel_size"], nlohmann::json::array({5}));
  EXPECT_EQ(keras_conv["config"]["strides"], nlohmann::json::array({2}));
  const YAML::Node conv_back = keras::keras_layer(keras_conv, "m.keras").spec->node;
  EXPECT_EQ(conv_back["type"].as<std::string>(), "conv1d");
  EXPECT_EQ(conv_back["filters"].as<int64_t>(), 6);
  EXPECT_EQ(conv_back["kernel_size"].as<int64_t>(), 5);
  EXPECT_EQ(conv_back["strides"].as<int64_t>(), 2);
  EXPECT_EQ(conv_back["padding"].as<std::string>(), "same");
  EXPECT_EQ(conv_back["activation"].as<std::string>(), "relu");
  EXPECT_EQ(described[1]["config"]["mask_zero"], false);
  EXPECT_FALSE(back["mask_zero"].as<bool>());
  embedding.mask_zero = true;  // Note [padding masks]
  const nlohmann::json masked =
      keras::keras_model_config({embedding, layer("lstm")}, Shape({12}))["config"]["layers"][1];
  EXPECT_EQ(masked["config"]["mask_zero"], true);
  EXPECT_TRUE(keras::keras_layer(masked, "m.keras: layers[1]").spec->node["mask_zero"].as<bool>());
}

// Keras' Reshape, both ways.
TEST(KerasModelConfig, ReshapeAsKerasReshape) {
  LayerSpec reshape = layer("reshape");
  reshape.target_shape = {4, -1, 1};
  const nlohmann::json model =
      keras::keras_model_config({reshape, layer("flatten"), layer("dense")}, Shape({16}));
  const nlohmann::json& described = model["config"]["layers"][1];
  EXPECT_EQ(described["class_name"], "Reshape");
  EXPECT_EQ(described["config"]["target_shape"], nlohmann::json::parse("[4, -1, 1]"));
  const keras::KerasLayer back = keras::keras_layer(described, "m.keras: layers[1]");
  ASSERT_TRUE(back.spec.has_value());
  EXPECT_EQ(back.spec->node["type"].as<std::string>(), "reshape");
  EXPECT_EQ(back.spec->node["target_shape"].as<std::vector<int64_t>>(),
            (std::vector<int64_t>{4, -1, 1}));
}

// And back: Keras' own config of a Sequential (as Keras 3 writes it, with its defaults) becomes
// the API's Specs and compile() settings; what ddp-trainer's layers do not have is refused by
// name.
TEST(KerasModelConfig, ReadsKerasConfigsAndRefusesWhatItCannotTrain) {
  const nlohmann::json keras = nlohmann::json::parse(R"({
    "module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "layers": [
      {"class_name": "InputLayer", "config": {"batch_shape": [null, 8, 8, 3]}},
      {"class_name": "Conv2D", "config": {"filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
        "padding": "same", "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
        "activation": "relu", "use_bias": false, "kernel_regularizer": {"class_name": "L2",
        "config": {"l2": 0.01}}, "bias_regularizer": null, "kernel_constraint": null}},
      {"class_name": "BatchNormalization", "config": {"axis": -1, "momentum": 0.9,
        "epsilon": 0.001, "center": true, "scale": true, "synchronized": false}},
      {"class_name": "MaxPooling2D", "config": {"pool_size": [2, 2], "strides": [2, 2],
        "padding": "valid"}},
      {"class_name": "Flatten", "config": {}},
      {"class_name": "Dense", "config": {"units": 16, "activation": "linear"}},
      {"class_name": "ReLU", "config": {"max_value": null, "negative_slope": 0.0,
        "threshold": 0.0}},
      {"class_name": "Activation", "config": {"activation": "linear"}},
      {"class_name": "Dense", "config": {"units": 3, "activation": "softmax"}}]},
    "compile_config": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.003,
      "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false, "clipnorm": null,
      "weight_decay": null, "use_ema": false}}, "loss": "sparse_categorical_crossentropy",
      "loss_weights": null, "metrics": ["accuracy"]}})");
  const keras::KerasModel model = keras::keras_model_from_config(keras, "m.keras", true);
  EXPECT_EQ(model.input_shape, (std::vector<int64_t>{8, 8, 3}));
  std::vector<std::string> types;
  for (const keras::Spec& layer : model.layers)
    types.push_back(layer.node["type"].as<std::string>());
  EXPECT_EQ(types, (std::vector<std::string>{"conv2d", "batch_normalization", "max_pooling2d",
                                             "flatten", "dense", "relu", "dense"}));  // no identity
  EXPECT_EQ(model.layers[0].node["padding"].as<std::string>(), "same");
  EXPECT_EQ(model.layers[0].node["use_bias"].as<bool>(), false);
  EXPECT_EQ(model.layers[0].node["kernel_regularizer"]["l2"].as<double>(), 0.01);
  EXPECT_FALSE(model.layers[0].node["kernel_regularizer"]["l1"]);
  EXPECT_EQ(model.layers[1].node["momentum"].as<double>(), 0.9);
  EXPECT_EQ(model.layers[6].node["activation"].as<std::string>(), "softmax");
  ASSERT_TRUE(model.optimizer.has_value());
  EXPECT_EQ(model.optimizer->node["type"].as<std::string>(), "adam");
  EXPECT_EQ(model.optimizer->node["learning_rate"].as<double>(), 0.003);
  EXPECT_EQ(model.optimizer->node["epsilon"].as<double>(), 1e-7);  // Keras', not 1e-8
  EXPECT_EQ(model.loss->node.as<std::string>(), "sparse_categorical_crossentropy");
  EXPECT_EQ(model.metrics, (std::vector<std::string>{"accuracy"}));
  EXPECT_FALSE(keras::keras_model_from_config(keras, "m.keras", false).optimizer.has_value());

  // A layer, a setting or an optimizer ddp-trainer does not have: one line naming it.
  const auto refused = [&](const char* pointer, const nlohmann::json& value) {
    nlohmann::json changed = keras;
    changed[nlohmann::json::json_pointer(pointer)] = value;
    try {
      keras::keras_model_from_config(changed, "m.keras", true);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(refused("/config/layers/1/class_name", "SeparableConv2D"),
            "m.keras: config.json: layers[1] (SeparableConv2D): the layer class SeparableConv2D; "
            "ddp-trainer's layers do not have it");
  EXPECT_EQ(refused("/config/layers/1/config/groups", 2),
            "m.keras: config.json: layers[1] (Conv2D): groups 2; ddp-trainer's layers do not "
            "have it");
  EXPECT_EQ(refused("/config/layers/5/config/activation", "log_sigmoid"),
            "m.keras: config.json: layers[5] (Dense): activation log_sigmoid; ddp-trainer's layers "
            "do not have it");
  EXPECT_EQ(refused("/config/layers/1/config/data_format", "channels_first"),
            "m.keras: config.json: layers[1] (Conv2D): data_format \"channels_first\"; "
            "ddp-trainer's layers do not have it");
  EXPECT_EQ(refused("/compile_config/optimizer/class_name", "Adafactor"),
            "m.keras: config.json: compile_config: the optimizer Adafactor is not one ddp-trainer "
            "has (Adam, AdamW, RMSprop, SGD, Adagrad, Adamax, Nadam, Lion); load with "
            "compile=False and compile() with one");
  EXPECT_EQ(refused("/compile_config/optimizer/config/amsgrad", true),
            "m.keras: config.json: compile_config: the optimizer Adam: amsgrad true; "
            "ddp-trainer's optimizers do not have it");
  // Frozen layers are had (Note [frozen layers]); a frozen model leaves nothing to train.
  EXPECT_EQ(refused("/config/trainable", false),
            "m.keras: config.json: the model is frozen (trainable: false): nothing in it is left "
            "to train; set trainable on its layers instead");
  EXPECT_EQ(refused("/config/layers/5/config/trainable", false), "accepted");
  EXPECT_EQ(refused("/class_name", "Subclassed"),
            "m.keras: config.json: a Subclassed model; ddp-trainer trains Sequential models "
            "and functional ones of residual blocks");
  EXPECT_EQ(refused("/config/layers/1/config/filters", "four"),
            "m.keras: config.json: layers[1] (Conv2D): filters \"four\" is not a number");
  EXPECT_EQ(refused("/config/layers", "none")
                .rfind("m.keras: config.json: not a Keras model config: ", 0),
            0u);
}

// Keras' loss objects (compile_config's, get_config()'s) as the config's loss, and back: a name
// stays a name, settings make Keras' object; what ddp-trainer's losses do not have is refused.
TEST(KerasModelConfig, LossObjectsAsTheConfigsLossAndBack) {
  const auto loss = [](const char* text) {
    return keras::keras_loss(nlohmann::json::parse(text), "compile").node;
  };
  const YAML::Node sparse = loss(R"({"class_name": "SparseCategoricalCrossentropy", "config": {
      "name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size",
      "from_logits": true, "ignore_class": null}})");
  EXPECT_EQ(sparse["type"].as<std::string>(), "sparse_categorical_crossentropy");
  EXPECT_TRUE(sparse["from_logits"].as<bool>());
  const YAML::Node smoothed = loss(R"({"class_name": "CategoricalCrossentropy", "config": {
      "from_logits": false, "label_smoothing": 0.1, "axis": -1}})");
  EXPECT_EQ(smoothed["type"].as<std::string>(), "categorical_crossentropy");
  EXPECT_FALSE(smoothed["from_logits"]);
  EXPECT_EQ(smoothed["label_smoothing"].as<double>(), 0.1);
  EXPECT_EQ(loss(R"({"class_name": "MeanSquaredError", "config": {}})")["type"].as<std::string>(),
            "mean_squared_error");
  EXPECT_EQ(loss(R"("binary_crossentropy")").as<std::string>(), "binary_crossentropy");

  const nlohmann::json back = keras::keras_loss_json(sparse);
  EXPECT_EQ(back["class_name"], "SparseCategoricalCrossentropy");
  EXPECT_EQ(back["config"]["from_logits"], true);
  EXPECT_EQ(keras::keras_loss(back, "compile").node["from_logits"].as<bool>(), true);
  EXPECT_EQ(keras::keras_loss_json(smoothed)["config"]["label_smoothing"], 0.1);
  EXPECT_EQ(keras::keras_loss_json(YAML::Node("mse")), "mse");
  EXPECT_TRUE(
      keras::keras_loss_json(YAML::Load("{type: binary_crossentropy, pos_weight: [2]}")).is_null());

  const auto refused = [&](const char* text) {
    try {
      loss(text);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(refused(R"({"class_name": "Huber", "config": {}})"),
            "compile: the loss Huber is not one ddp-trainer has (BinaryCrossentropy, "
            "CategoricalCrossentropy, MeanSquaredError, SparseCategoricalCrossentropy, or one by "
            "name)");
  // Keras' ignore_class (Note [masked positions]) both ways; CategoricalCrossentropy has none.
  const YAML::Node ignoring = loss(R"({"class_name": "SparseCategoricalCrossentropy", "config": {
      "ignore_class": -100}})");
  EXPECT_EQ(ignoring["ignore_class"].as<int64_t>(), -100);
  EXPECT_EQ(keras::keras_loss_json(ignoring)["config"]["ignore_class"], -100);
  EXPECT_TRUE(back["config"]["ignore_class"].is_null());
  EXPECT_EQ(refused(R"({"class_name": "CategoricalCrossentropy", "config": {
      "ignore_class": 0}})"),
            "compile: the loss CategoricalCrossentropy: ignore_class 0; ddp-trainer's "
            "losses do not have it");
  EXPECT_EQ(refused(R"({"class_name": "CategoricalCrossentropy", "config": {"reduction": "sum"}})"),
            "compile: the loss CategoricalCrossentropy: reduction \"sum\"; ddp-trainer's losses "
            "do not have it");
  EXPECT_EQ(refused(R"({"class_name": "BinaryCrossentropy", "config": {"from_logits": true}})"),
            "compile: the loss BinaryCrossentropy: from_logits true; ddp-trainer's losses do not "
            "have it");
}

}  // namespace
}  // namespace ddp
