#include "api/keras_functional.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "nn/model_builder.h"

namespace ddp::keras {
namespace {

constexpr size_t kNotMet = std::numeric_limits<size_t>::max();

// Appends the nodes of `chain` called on node `from`; returns the last one's (`from` for none).
size_t append_chain(FunctionalGraph& graph, const std::vector<LayerTree>& chain, size_t from) {
  for (const LayerTree& item : chain) {
    std::vector<size_t> inputs = {from};
    if (item.block)
      inputs = {append_chain(graph, item.layers, from), append_chain(graph, item.shortcut, from)};
    graph.nodes.push_back({item.leaf, std::move(inputs)});
    from = graph.nodes.size() - 1;
  }
  return from;
}

bool any_parameters(const LayerTree& item, const std::vector<LeafLayer>& leaves) {
  const auto any = [&leaves](const std::vector<LayerTree>& chain) {
    return std::any_of(chain.begin(), chain.end(),
                       [&leaves](const LayerTree& t) { return any_parameters(t, leaves); });
  };
  return item.block ? any(item.layers) || any(item.shortcut) : leaves.at(item.leaf).parameters;
}

// Each leaf's place: its prefix (a chain's layers with parameters numbered, blocks with them among
// them, as Residual's parts and Sequential's names count them) and the model's layer it is in.
void place(const std::vector<LayerTree>& chain, const std::string& name, const KerasLayerRef* top,
           const std::vector<LeafLayer>& leaves, std::vector<KerasLayerRef>& places) {
  size_t k = 0;
  for (size_t i = 0; i < chain.size(); ++i) {
    const LayerTree& item = chain[i];
    KerasLayerRef& at = places.at(item.leaf);
    at = top ? KerasLayerRef{"", "", top->top, true} : KerasLayerRef{"", "", i, false};
    at.type = leaves.at(item.leaf).type;
    const std::string prefix = name + "." + std::to_string(k);
    if (any_parameters(item, leaves)) ++k;
    if (!item.block) {
      if (leaves[item.leaf].parameters) at.prefix = prefix;
      continue;
    }
    at.inner = true;  // the block's Add
    place(item.layers, prefix + ".layers", &at, leaves, places);
    place(item.shortcut, prefix + ".shortcut", &at, leaves, places);
  }
}

LayerTree tree_of(const YAML::Node& layer, std::vector<LeafLayer>& leaves) {
  LayerTree item{leaves.size()};
  if (layer["type"].as<std::string>() != "residual") {
    leaves.push_back(leaf_layer(layer));
    return item;
  }
  item.block = true;
  leaves.push_back({});  // its Add
  for (const YAML::Node& inner : layer["layers"]) item.layers.push_back(tree_of(inner, leaves));
  if (layer["shortcut"])
    for (const YAML::Node& inner : layer["shortcut"])
      item.shortcut.push_back(tree_of(inner, leaves));
  return item;
}

}  // namespace

FunctionalGraph functional_graph(const std::vector<LayerTree>& model) {
  FunctionalGraph graph;
  graph.nodes.push_back({kNotMet, {}});  // the input
  graph.output = append_chain(graph, model, graph.input);
  return graph;
}

std::vector<size_t> keras_layer_order(const FunctionalGraph& graph) {
  const size_t n = graph.nodes.size();
  std::vector<size_t> met(n, kNotMet), depth(n, 0);
  std::vector<size_t> finished;  // each node after the nodes it takes
  // The walk from the output, each node's inputs first to last, on a stack of its own: a chain of
  // thousands of layers is as deep (the call stack would overflow).
  size_t walked = 0;
  std::vector<std::pair<size_t, size_t>> path = {{graph.output, 0}};  // a node, its next input
  met[graph.output] = walked++;
  while (!path.empty()) {
    const auto [node, next] = path.back();
    const std::vector<size_t>& inputs = graph.nodes[node].inputs;
    if (next == inputs.size()) {
      finished.push_back(node);
      path.pop_back();
      continue;
    }
    ++path.back().second;
    if (met[inputs[next]] != kNotMet) continue;
    met[inputs[next]] = walked++;
    path.emplace_back(inputs[next], 0);
  }
  // Last finished first: every node comes before the nodes it takes, so its depth is known.
  for (auto node = finished.rbegin(); node != finished.rend(); ++node)
    for (const size_t input : graph.nodes[*node].inputs)
      depth[input] = std::max(depth[input], depth[*node] + 1);
  std::vector<size_t> order = finished;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return depth[a] != depth[b] ? depth[a] > depth[b] : met[a] < met[b];
  });
  return order;
}

std::vector<KerasLayerRef> keras_layer_refs(const std::vector<LayerTree>& model,
                                            const FunctionalGraph& graph,
                                            const std::vector<LeafLayer>& leaves) {
  std::vector<KerasLayerRef> places(leaves.size());
  place(model, "layers", nullptr, leaves, places);
  std::vector<KerasLayerRef> refs;
  for (const size_t node : keras_layer_order(graph))
    if (node != graph.input) refs.push_back(places.at(graph.nodes[node].leaf));
  return refs;
}

std::vector<KerasLayerRef> keras_layer_refs(const YAML::Node& layers) {
  std::vector<LeafLayer> leaves;
  std::vector<LayerTree> model;
  for (const YAML::Node& layer : layers) model.push_back(tree_of(layer, leaves));
  return keras_layer_refs(model, functional_graph(model), leaves);
}

LeafLayer leaf_layer(const YAML::Node& layer) {
  const auto flag = [&layer](const char* key) { return layer[key] && layer[key].as<bool>(); };
  const std::string type = layer["type"].as<std::string>();
  return {std::string(flag("bidirectional") ? "bidirectional_" : "") +
              (flag("time_distributed") ? "time_distributed_" : "") + type,
          has_parameters(type)};
}

}  // namespace ddp::keras
