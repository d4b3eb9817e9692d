// Note [Keras functional models]: residual blocks as Keras' functional graphs both ways, and the
// order in which Keras lists (and its weights files name) the layers of such a graph.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "model_from_yaml.h"

namespace ddp {
namespace {

using nlohmann::json;

json tensor(const std::string& layer) {
  return {
      {"class_name", "__keras_tensor__"},
      {"config", {{"shape", {nullptr}}, {"dtype", "float32"}, {"keras_history", {layer, 0, 0}}}}};
}

// A layer of a functional config as Keras 3 writes it, called on `inputs` (an Add on their list).
json layer(const std::string& class_name, const std::string& name, json config,
           const std::vector<std::string>& inputs) {
  config["name"] = name;
  json args = json::array();
  for (const std::string& input : inputs) args.push_back(tensor(input));
  if (inputs.size() > 1) args = json::array({args});
  json calls = json::array();
  if (!inputs.empty()) calls.push_back({{"args", args}, {"kwargs", json::object()}});
  return {{"class_name", class_name}, {"config", config}, {"name", name}, {"inbound_nodes", calls}};
}

json conv(int filters, int kernel, int strides, bool bias = true) {
  return {{"filters", filters},
          {"kernel_size", {kernel, kernel}},
          {"strides", {strides, strides}},
          {"padding", "same"},
          {"use_bias", bias}};
}

// A ResNet as Keras' functional API builds it, its layers in the order they were called: the
// projection shortcut before the block's layers, and Add()([shortcut, x]); then an identity block
// whose Add takes the block's input first.
json keras_resnet() {
  const json none = json::object();
  json layers = json::array({
      layer("InputLayer", "input_layer", {{"batch_shape", {nullptr, 8, 8, 3}}}, {}),
      layer("Conv2D", "conv2d", {{"filters", 4}, {"kernel_size", {3, 3}}, {"activation", "relu"}},
            {"input_layer"}),
      layer("Conv2D", "conv2d_1", conv(6, 1, 2, false), {"conv2d"}),
      layer("BatchNormalization", "batch_normalization", none, {"conv2d_1"}),
      layer("Conv2D", "conv2d_2", conv(6, 3, 2), {"conv2d"}),
      layer("BatchNormalization", "batch_normalization_1", none, {"conv2d_2"}),
      layer("ReLU", "re_lu", none, {"batch_normalization_1"}),
      layer("Conv2D", "conv2d_3", conv(6, 3, 1), {"re_lu"}),
      layer("BatchNormalization", "batch_normalization_2", none, {"conv2d_3"}),
      layer("Add", "add", none, {"batch_normalization", "batch_normalization_2"}),
      layer("Activation", "activation", {{"activation", "relu"}}, {"add"}),
      layer("Conv2D", "conv2d_4", conv(6, 3, 1), {"activation"}),
      layer("Add", "add_1", none, {"activation", "conv2d_4"}),
      layer("GlobalAveragePooling2D", "global_average_pooling2d", none, {"add_1"}),
      layer("Dense", "dense", {{"units", 2}, {"activation", "softmax"}},
            {"global_average_pooling2d"}),
  });
  return {{"class_name", "Functional"},
          {"config",
           {{"name", "functional"},
            {"layers", layers},
            {"input_layers", {"input_layer", 0, 0}},
            {"output_layers", {"dense", 0, 0}}}}};
}

std::vector<std::pair<std::string, std::string>> types_and_prefixes(
    const std::vector<keras::KerasLayerRef>& refs) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const keras::KerasLayerRef& ref : refs) out.emplace_back(ref.type, ref.prefix);
  return out;
}

// The order Keras 3.15 gave this model's layers (model.layers), its names as the class counters
// of that order show it: conv2d_2 is the block's first convolution, called after the shortcut's.
TEST(KerasFunctional, ReadsBlocksInKerasOrder) {
  const keras::KerasModel model = keras::keras_model_from_config(keras_resnet(), "m.keras", false);
  EXPECT_EQ(model.input_shape, (std::vector<int64_t>{8, 8, 3}));
  ASSERT_EQ(model.layers.size(), 6u);
  const YAML::Node block = model.layers[1].node;
  EXPECT_EQ(block["type"].as<std::string>(), "residual");
  // The longer branch is the block's layers, whichever of Add's inputs it was.
  ASSERT_EQ(block["layers"].size(), 5u);
  EXPECT_EQ(block["layers"][0]["strides"].as<std::vector<int64_t>>(), (std::vector<int64_t>{2, 2}));
  ASSERT_EQ(block["shortcut"].size(), 2u);
  EXPECT_FALSE(block["shortcut"][0]["use_bias"].as<bool>());
  const YAML::Node identity = model.layers[3].node;
  EXPECT_EQ(identity["layers"].size(), 1u);
  EXPECT_FALSE(identity["shortcut"]);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"conv2d", "layers.0"},
      {"conv2d", "layers.1.layers.0"},
      {"batch_normalization", "layers.1.layers.1"},
      {"relu", ""},
      {"conv2d", "layers.1.shortcut.0"},
      {"conv2d", "layers.1.layers.2"},
      {"batch_normalization", "layers.1.shortcut.1"},
      {"batch_normalization", "layers.1.layers.3"},
      {"", ""},  // add
      {"relu", ""},
      {"conv2d", "layers.2.layers.0"},
      {"", ""},  // add_1
      {"global_average_pooling2d", ""},
      {"dense", "layers.3"}};
  EXPECT_EQ(types_and_prefixes(model.keras_layers), expected);
  // The same model built from the Specs names its parameters as the prefixes say.
  YAML::Emitter specs;
  specs << YAML::Flow << YAML::BeginSeq;
  for (const keras::Spec& spec : model.layers) specs << spec.node;
  specs << YAML::EndSeq;
  const std::string flow = specs.c_str();
  auto backend = make_cpu_backend();
  const auto built = build(*backend, Shape{8, 8, 3}, flow.substr(1, flow.size() - 2));
  std::vector<std::string> names;
  for (const ParamEntry& e : built->param_entries()) names.push_back(e.name);
  for (const auto& [type, prefix] : expected) {
    if (prefix.empty()) continue;
    EXPECT_NE(std::find(names.begin(), names.end(), prefix + ".weight"), names.end()) << prefix;
  }
}

// The writing half: our own model as a Functional whose layers are listed, and named, in the
// order Keras 3.15 listed them on loading it; read back, the same blocks and order.
TEST(KerasFunctional, WritesBlocksInKerasOrder) {
  const std::string layers =
      "{type: conv2d, filters: 4, kernel_size: 3, activation: relu, padding: same}, "
      "{type: residual, layers: ["
      "  {type: conv2d, filters: 6, kernel_size: 3, strides: 2, padding: same}, "
      "  {type: batch_normalization}, {type: relu}, "
      "  {type: conv2d, filters: 6, kernel_size: 3, padding: same}, {type: batch_normalization}], "
      " shortcut: [{type: conv2d, filters: 6, kernel_size: 1, strides: 2, use_bias: false}, "
      "  {type: batch_normalization}]}, "
      "{type: relu}, "
      "{type: residual, layers: [{type: conv2d, filters: 6, kernel_size: 3, padding: same, "
      "  activation: relu}]}, "
      "{type: global_average_pooling2d}, {type: dense, units: 2, activation: softmax}";
  const Config config = model_config(Shape{8, 8, 3}, layers);
  const json keras = keras::keras_model_config(config.layers, Shape{8, 8, 3});
  EXPECT_EQ(keras["class_name"], "Functional");
  std::vector<std::string> names;
  for (const json& layer : keras["config"]["layers"]) names.push_back(layer["name"]);
  EXPECT_EQ(names,
            (std::vector<std::string>{"input_layer", "conv2d", "conv2d_1", "batch_normalization",
                                      "activation", "conv2d_2", "conv2d_3", "batch_normalization_1",
                                      "batch_normalization_2", "add", "activation_1", "conv2d_4",
                                      "add_1", "global_average_pooling2d", "dense"}));
  const json& add = keras["config"]["layers"][9]["inbound_nodes"][0]["args"][0];
  ASSERT_EQ(add.size(), 2u);  // the block's layers' output, then its shortcut's
  EXPECT_EQ(add[0]["config"]["keras_history"][0], "batch_normalization_1");
  EXPECT_EQ(add[1]["config"]["keras_history"][0], "batch_normalization_2");
  EXPECT_EQ(add[0]["config"]["shape"], json::array({nullptr, 4, 4, 6}));
  EXPECT_EQ(keras["config"]["output_layers"], json::array({"dense", 0, 0}));

  const keras::KerasModel back = keras::keras_model_from_config(keras, "m.keras", false);
  ASSERT_EQ(back.layers.size(), 6u);
  EXPECT_EQ(back.layers[1].node["layers"].size(), 5u);
  EXPECT_EQ(back.layers[1].node["shortcut"].size(), 2u);
  YAML::Node written = YAML::Load("[" + layers + "]");
  EXPECT_EQ(types_and_prefixes(back.keras_layers),
            types_and_prefixes(keras::keras_layer_refs(written)));
  // Keras' conv2d_2 and conv2d_3, of one depth: the block's layers are walked first.
  EXPECT_EQ(back.keras_layers[4].prefix, "layers.1.layers.2");
  EXPECT_EQ(back.keras_layers[5].prefix, "layers.1.shortcut.0");
}

// Keras' order of a chain of 200,000 layers: the walk keeps its own stack (the call stack would
// overflow that deep).
TEST(KerasFunctional, OrdersLongChains) {
  YAML::Node layers(YAML::NodeType::Sequence);
  for (int k = 0; k < 200000; ++k) layers.push_back(YAML::Load("{type: relu}"));
  const std::vector<keras::KerasLayerRef> refs = keras::keras_layer_refs(layers);
  ASSERT_EQ(refs.size(), 200000u);
  EXPECT_EQ(refs.front().top, 0u);
  EXPECT_EQ(refs.back().top, 199999u);
}

std::string read_error(const json& config) {
  try {
    keras::keras_model_from_config(config, "m.keras", false);
    return "";
  } catch (const ConfigError& e) {
    return e.what();
  }
}

// What is no chain of layers and residual blocks is refused in one line naming the layer.
TEST(KerasFunctional, Refusals) {
  const auto changed = [](const std::function<void(json & layers)>& change) {
    json config = keras_resnet();
    change(config["config"]["layers"]);
    return read_error(config);
  };
  const auto refused = [&](const std::string& expected,
                           const std::function<void(json & layers)>& change) {
    const std::string error = changed(change);
    EXPECT_NE(error.find(expected), std::string::npos) << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << error;
  };
  refused("m.keras: config.json: layers[9] (Concatenate add): takes several tensors",
          [](json& l) { l[9]["class_name"] = "Concatenate"; });
  refused("layers[9] (Add add): adds 3 tensors; a residual block adds two",
          [](json& l) { l[9]["inbound_nodes"][0]["args"][0].push_back(tensor("conv2d")); });
  refused("layers[4] (Conv2D conv2d_2): called 2 times",
          [](json& l) { l[4]["inbound_nodes"].push_back(l[4]["inbound_nodes"][0]); });
  refused("layers[7] (Conv2D conv2d_3): called with training=true",
          [](json& l) { l[7]["inbound_nodes"][0]["kwargs"]["training"] = true; });
  refused("layers[7] (Conv2D conv2d_3): inbound_nodes in Keras 2's form",
          [](json& l) { l[7]["inbound_nodes"] = json::parse(R"([[["re_lu", 0, 0, {}]]])"); });
  refused("layers[7] (Conv2D conv2d_3): takes the output of nowhere",
          [](json& l) { l[7]["inbound_nodes"][0]["args"][0] = tensor("nowhere"); });
  refused("layers[6] (ReLU re_lu): its output goes two ways that no Add joins", [](json& l) {
    // A skip from inside the block to the identity block's Add: no longer a chain of blocks.
    l[12]["inbound_nodes"][0]["args"][0][0] = tensor("re_lu");
  });
  refused("layers[11] (Conv2D conv2d_4): not on the way from the input to the output",
          [](json& l) { l[12]["inbound_nodes"][0]["args"][0][1] = tensor("activation"); });
  refused("layers[11] (Add add_1): adds a tensor to itself", [](json& l) {
    l[12]["inbound_nodes"][0]["args"][0][1] = tensor("activation");
    l.erase(11);
  });
  refused("part of a cycle",
          [](json& l) { l[2]["inbound_nodes"][0]["args"][0] = tensor("batch_normalization"); });
  refused("layers[2] (InputLayer conv2d_1): a second input", [](json& l) {
    l[2] = layer("InputLayer", "conv2d_1", {{"batch_shape", {nullptr, 4, 4, 6}}}, {});
  });
  json two_outputs = keras_resnet();
  two_outputs["config"]["output_layers"] = json::parse(R"([["dense", 0, 0], ["add_1", 0, 0]])");
  EXPECT_EQ(read_error(two_outputs),
            "m.keras: config.json: output_layers: 2 of them; ddp-trainer's models have one "
            "input and one output");
  // Blocks nested 40 deep (each Add's second branch holds the next block): one line, no deep
  // recursion.
  json nested = json::array({layer("InputLayer", "in", {{"batch_shape", {nullptr, 4}}}, {})});
  std::string below = "in";
  for (int d = 0; d < 40; ++d) {
    const std::string dense = "dense_" + std::to_string(d), add = "add_" + std::to_string(d);
    nested.push_back(layer("Dense", dense, {{"units", 4}}, {below}));
    nested.push_back(layer("Add", add, json::object(), {below, dense}));
    below = add;
  }
  json deep = {
      {"class_name", "Functional"},
      {"config",
       {{"layers", nested}, {"input_layers", {"in", 0, 0}}, {"output_layers", {below, 0, 0}}}}};
  EXPECT_NE(read_error(deep).find("residual blocks nested more than 32 deep"), std::string::npos)
      << read_error(deep);
  json other = keras_resnet();
  other["class_name"] = "Model";
  EXPECT_NE(read_error(other).find("a Model model; ddp-trainer trains Sequential models and "
                                   "functional ones of residual blocks"),
            std::string::npos);
}

}  // namespace
}  // namespace ddp
