// The reading half of Note [Keras functional models]: a Keras functional model's config as the
// API's Specs, its graph taken apart into a chain of layers and residual blocks.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "api/keras_functional.h"
#include "api/keras_model_config.h"
#include "core/error.h"

namespace ddp::keras {
namespace {

using nlohmann::json;

constexpr size_t kWalking = std::numeric_limits<size_t>::max();
// Blocks inside blocks, at most this deep (a model config's limit): a hostile graph's nesting ends
// in a one-line error, not in a stack overflow.
constexpr int kMaxBlockDepth = 32;

// A functional config's graph, node k being layers[k], and its layers converted.
class FunctionalConfig {
 public:
  FunctionalConfig(const json& config, std::string where) : where_(std::move(where)) {
    const json& layers = config.at("layers");
    for (size_t k = 0; k < layers.size(); ++k) {
      const std::string name = layers[k].contains("name")
                                   ? layers[k]["name"].get<std::string>()
                                   : layers[k].at("config").at("name").get<std::string>();
      if (!index_.emplace(name, k).second)
        throw ConfigError(where_ + ": layers[" + std::to_string(k) + "]: a second layer named " +
                          name);
      names_.push_back(name);
      classes_.push_back(layers[k].at("class_name").get<std::string>());
    }
    for (size_t k = 0; k < layers.size(); ++k) graph_.nodes.push_back(node(layers[k], k));
    graph_.input = end(config.at("input_layers"), "input_layers");
    graph_.output = end(config.at("output_layers"), "output_layers");
    if (classes_[graph_.input] != "InputLayer")
      throw ConfigError(where_ + ": input_layers: " + named(graph_.input) +
                        " is not an InputLayer");
    specs_.resize(layers.size());
    for (size_t k = 0; k < layers.size(); ++k) {
      if (classes_[k] == "InputLayer" && k != graph_.input)
        throw ConfigError(where_ + ": " + named(k) +
                          ": a second input; ddp-trainer's models have one");
      if (classes_[k] == "Add") continue;
      KerasLayer layer = keras_layer(layers[k], where_ + ": layers[" + std::to_string(k) + "]");
      if (k == graph_.input) input_shape_ = std::move(layer.input_shape);
      specs_[k] = std::move(layer.spec);
    }
  }

  // The model: its input shape, layers (blocks of residual Specs) and their Keras order.
  void describe(KerasModel& model) {
    used_.assign(graph_.nodes.size(), false);
    std::vector<LayerTree> tree = chain(graph_.output, graph_.input, 0);
    for (size_t k = 0; k < graph_.nodes.size(); ++k)
      if (!used_[k] && k != graph_.input)
        throw ConfigError(where_ + ": " + named(k) +
                          ": not on the way from the input to the output");
    model.input_shape = input_shape_;
    model.layers = specs(tree);
    std::vector<LeafLayer> leaves(graph_.nodes.size());
    for (size_t k = 0; k < graph_.nodes.size(); ++k)
      if (specs_[k]) leaves[k] = leaf_layer(specs_[k]->node);
    model.keras_layers = keras_layer_refs(tree, graph_, leaves);
  }

 private:
  std::string named(size_t k) const {
    return "layers[" + std::to_string(k) + "] (" + classes_[k] + " " + names_[k] + ")";
  }

  // The layer whose output `tensor` (a __keras_tensor__ of a call's arguments) is.
  size_t producer(const json& tensor, const std::string& at) const {
    if (!tensor.is_object() || tensor.value("class_name", "") != "__keras_tensor__")
      throw ConfigError(at + ": takes " + tensor.dump().substr(0, 80) +
                        ", not a layer's output; ddp-trainer reads layers called on one tensor");
    const json& history = tensor.at("config").at("keras_history");
    const std::string name = history.at(0).get<std::string>();
    if (history.at(1) != 0 || history.at(2) != 0)
      throw ConfigError(at + ": takes " + history.dump() +
                        ", of a layer called more than once or with several outputs; " +
                        "ddp-trainer reads layers called once, with one output");
    const auto found = index_.find(name);
    if (found == index_.end())
      throw ConfigError(at + ": takes the output of " + name + ", which is not among the layers");
    return found->second;
  }

  // input_layers or output_layers: [name, 0, 0], or a list of one of them.
  size_t end(const json& ends, const char* key) const {
    const bool list = ends.is_array() && !ends.empty() && ends[0].is_array();
    if (list && ends.size() != 1)
      throw ConfigError(where_ + ": " + key + ": " + std::to_string(ends.size()) +
                        " of them; ddp-trainer's models have one input and one output");
    const json& one = list ? ends[0] : ends;
    const std::string name = one.at(0).get<std::string>();
    const auto found = index_.find(name);
    if (found == index_.end())
      throw ConfigError(where_ + ": " + key + ": " + name + " is not among the layers");
    return found->second;
  }

  FunctionalGraph::Node node(const json& layer, size_t k) const {
    const bool add = classes_[k] == "Add";
    FunctionalGraph::Node node{k, {}};
    const std::string at = where_ + ": " + named(k);
    const json& calls = layer.value("inbound_nodes", json::array());
    if (classes_[k] == "InputLayer") return node;
    if (calls.size() != 1)
      throw ConfigError(at + ": called " + std::to_string(calls.size()) +
                        " times; ddp-trainer reads layers called once (shared layers are not)");
    const json& call = calls[0];
    if (call.is_array())
      throw ConfigError(at + ": inbound_nodes in Keras 2's form; save the model with Keras 3");
    const json kwargs = call.value("kwargs", json::object());
    for (const auto& [key, value] : kwargs.items())
      if (!value.is_null())
        throw ConfigError(at + ": called with " + key + "=" + value.dump() +
                          "; ddp-trainer reads layers called on their input alone");
    const json& args = call.at("args");
    const bool several = args.size() == 1 && args[0].is_array();
    if (add && (!several || args[0].size() != 2))
      throw ConfigError(at + ": adds " + (several ? std::to_string(args[0].size()) : "no") +
                        " tensors; a residual block adds two, its layers' and its shortcut's");
    if (!add && (args.size() != 1 || several))
      throw ConfigError(at + ": takes several tensors; ddp-trainer's models merge branches " +
                        "by Add alone (residual blocks)");
    for (const json& tensor : several ? args[0] : args) node.inputs.push_back(producer(tensor, at));
    return node;
  }

  // The node before `node` on its way back to the input: the one it takes, or for an Add (`depth`
  // blocks inside others) the fork its two branches start from.
  size_t before(size_t node, int depth) {
    const FunctionalGraph::Node& n = graph_.nodes[node];
    return classes_[node] == "Add" ? fork(node, depth) : n.inputs.at(0);
  }

  // The last node on the way back to the input that both of an Add's branches pass.
  size_t fork(size_t add, int depth) {
    if (depth > kMaxBlockDepth)
      throw ConfigError(where_ + ": " + named(add) + ": residual blocks nested more than " +
                        std::to_string(kMaxBlockDepth) + " deep");
    auto [known, fresh] = forks_.emplace(add, kWalking);
    if (!fresh && known->second == kWalking) cycle(add);
    if (!fresh) return known->second;
    const std::vector<size_t>& inputs = graph_.nodes[add].inputs;
    std::set<size_t> first;
    size_t steps = 0;
    for (size_t node = inputs[0];; node = before(node, depth + 1)) {
      first.insert(node);
      if (node == graph_.input) break;
      if (++steps > graph_.nodes.size()) cycle(node);
    }
    size_t node = inputs[1];
    for (steps = 0; !first.count(node); node = before(node, depth + 1))
      if (node == graph_.input || ++steps > graph_.nodes.size()) cycle(node);
    return forks_[add] = node;
  }

  [[noreturn]] void cycle(size_t k) const {
    throw ConfigError(where_ + ": " + named(k) + ": part of a cycle, or of no way to the input");
  }

  // The layers and blocks from the output of `from` (exclusive) to that of `node`, taken apart;
  // `depth` blocks hold them.
  std::vector<LayerTree> chain(size_t node, size_t from, int depth) {
    std::vector<LayerTree> items;
    while (node != from) {
      if (node == graph_.input) cycle(from);
      if (used_[node])
        throw ConfigError(where_ + ": " + named(node) +
                          ": its output goes two ways that no Add joins again as a residual " +
                          "block; ddp-trainer reads chains of layers and residual blocks");
      used_[node] = true;
      const FunctionalGraph::Node& n = graph_.nodes[node];
      if (classes_[node] != "Add") {
        items.push_back({node});
        node = n.inputs[0];
        continue;
      }
      const size_t start = fork(node, depth);
      items.push_back(
          {node, true, chain(n.inputs[0], start, depth + 1), chain(n.inputs[1], start, depth + 1)});
      node = start;
    }
    std::reverse(items.begin(), items.end());
    return items;
  }

  // The Specs of `tree`, leaving out the identities (linear activations); of a block's two
  // branches the one with more layers is its `layers` (ties: Add's first input), and a block
  // whose branches are both the identity is refused.
  std::vector<Spec> specs(std::vector<LayerTree>& tree) const {
    std::vector<Spec> out;
    for (LayerTree& item : tree) {
      if (!item.block) {
        if (specs_[item.leaf]) out.push_back(*specs_[item.leaf]);
        continue;
      }
      std::vector<Spec> layers = specs(item.layers), shortcut = specs(item.shortcut);
      if (shortcut.size() > layers.size()) {
        std::swap(layers, shortcut);
        std::swap(item.layers, item.shortcut);
      }
      if (layers.empty())
        throw ConfigError(where_ + ": " + named(item.leaf) +
                          ": adds a tensor to itself (both its branches are the identity)");
      out.push_back(Residual(layers, shortcut));
    }
    return out;
  }

  std::string where_;
  std::map<std::string, size_t> index_;
  std::vector<std::string> names_, classes_;
  FunctionalGraph graph_;
  std::vector<int64_t> input_shape_;
  std::vector<std::optional<Spec>> specs_;  // none for the input, the Adds and the identities
  std::vector<bool> used_;
  std::map<size_t, size_t> forks_;
};

}  // namespace

void read_functional_layers(const json& config, const std::string& where, KerasModel& model) {
  FunctionalConfig(config.at("config"), where).describe(model);
}

}  // namespace ddp::keras
