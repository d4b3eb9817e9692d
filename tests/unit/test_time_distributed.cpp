// Keras' TimeDistributed(Dense) is Dense at each step of a sequence, which a dense layer over a
// sequence already is: read from Keras' configs as dense with time_distributed (so that its
// weights come from Keras' group for it, and it is written back under Keras' name), refused for
// other layers and over inputs without steps.

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "api/keras.h"
#include "api/keras_model_config.h"
#include "backend/backend.h"
#include "core/error.h"
#include "keras_api_fixtures.h"
#include "nn/model_builder.h"

namespace ddp {
namespace {

const char* const kKerasLayer = R"({"class_name": "TimeDistributed", "config": {
  "name": "time_distributed", "trainable": false, "layer": {"module": "keras.layers",
  "class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "relu",
  "use_bias": false}}}})";

TEST(TimeDistributed, KerasConfigIsDenseAtEachStepBothWays) {
  const keras::KerasLayer read =
      keras::keras_layer(nlohmann::json::parse(kKerasLayer), "m.keras: layers[0]");
  ASSERT_TRUE(read.spec);
  const YAML::Node& spec = read.spec->node;
  EXPECT_EQ(spec["type"].as<std::string>(), "dense");
  EXPECT_EQ(spec["units"].as<int64_t>(), 4);
  EXPECT_EQ(spec["activation"].as<std::string>(), "relu");
  EXPECT_FALSE(spec["use_bias"].as<bool>());
  EXPECT_TRUE(spec["time_distributed"].as<bool>());
  EXPECT_FALSE(spec["trainable"].as<bool>());  // the wrapper's

  LayerSpec dense;
  dense.type = "dense";
  dense.units = 4;
  dense.activation = "relu";
  dense.use_bias = false;
  dense.time_distributed = true;
  const nlohmann::json written = keras::keras_model_config({dense}, Shape{5, 3});
  const nlohmann::json& wrapper = written["config"]["layers"][1];
  EXPECT_EQ(wrapper["class_name"], "TimeDistributed");
  EXPECT_EQ(wrapper["config"]["name"], "time_distributed");
  EXPECT_EQ(wrapper["config"]["layer"]["class_name"], "Dense");
  EXPECT_EQ(wrapper["config"]["layer"]["config"]["units"], 4);
  const keras::KerasLayer again = keras::keras_layer(wrapper, "m.keras: layers[0]");
  ASSERT_TRUE(again.spec);
  EXPECT_TRUE(again.spec->node["time_distributed"].as<bool>());
  EXPECT_EQ(again.spec->node["units"].as<int64_t>(), 4);
  EXPECT_EQ(keras::keras_model_config({dense}, Shape{5, 3}).dump(), written.dump());
}

TEST(TimeDistributed, RefusedForOtherLayersAndInputsWithoutSteps) {
  nlohmann::json conv = nlohmann::json::parse(kKerasLayer);
  conv["config"]["layer"]["class_name"] = "Conv2D";
  EXPECT_EQ(error_of<ConfigError>([&] { keras::keras_layer(conv, "m.keras: layers[0]"); }),
            "m.keras: layers[0] (TimeDistributed): layer Conv2D (a Dense only); ddp-trainer's "
            "layers do not have it");
  EXPECT_THROW(keras::TimeDistributed(keras::Conv2D(4, 3)), ConfigError);
  EXPECT_TRUE(keras::TimeDistributed(keras::Dense(3)).node["time_distributed"].as<bool>());

  LayerSpec dense;
  dense.type = "dense";
  dense.units = 2;
  dense.path = "m.yaml: model.layers.0";
  dense.time_distributed = true;
  const std::unique_ptr<ComputeBackend> cpu = make_cpu_backend(false);
  EXPECT_NO_THROW(build_sequential(*cpu, Shape{5, 3}, {dense}));
  EXPECT_EQ(error_of<ConfigError>([&] { build_sequential(*cpu, Shape{3}, {dense}); }),
            "m.yaml: model.layers.0.time_distributed: over the steps of a sequence, and the "
            "layer's input is (3)");
}

}  // namespace
}  // namespace ddp
