// Note [Keras model config]: the config.json that Keras rebuilds a model from (keras_module loads
// it in Keras itself, where Keras is installed).

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/keras_model_config.h"

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

}  // namespace
}  // namespace ddp
