#pragma once
// Note [Keras functional models]: Keras has no residual block; a Keras ResNet is a functional
// model, a graph of layers whose branches meet in Add layers. ddp-trainer writes a model with
// residual blocks (Note [residual blocks]) as one: each block's layers called on the block's
// input, then its shortcut's, then Add()([layers, shortcut]). It reads a Keras functional model
// whose graph is a chain of layers and such blocks: one input and one output, each layer called
// once, every fork of the graph closed by a two-way Add, blocks nested inside branches. Of an
// Add's two branches the one with more layers becomes the block's `layers` (ties: Add's first
// input), and one without layers (the fork's tensor itself) the identity shortcut.
//
// Keras' weights files name a layer's group by its class and its place in model.layers (conv2d,
// conv2d_1, ...), and its optimizer keeps its variables in that order, which for a functional
// model is neither the order the layers were called in nor a branch after the other: Keras
// orders the layers by depth (the most layers between them and the output), deepest first, and
// layers of one depth by when a walk from the output, each layer's inputs first to last, first
// meets them (keras.src.ops.function.map_graph). keras_layer_order computes that order, so that
// both sides name and order the same variables.

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <string>
#include <vector>

namespace ddp::keras {

// A model's layers as Keras' functional API calls them: each a layer or a residual block of two
// branches, numbered in the caller's list of them (a block's number is its Add's).
struct LayerTree {
  size_t leaf = 0;
  bool block = false;
  std::vector<LayerTree> layers = {}, shortcut = {};
};

// Layers and what each takes: node `input` is the model's input, every other a layer or a
// block's Add (by its number), with the nodes whose outputs it takes (an Add's: its layers', then
// its shortcut's).
struct FunctionalGraph {
  struct Node {
    size_t leaf;
    std::vector<size_t> inputs;
  };
  std::vector<Node> nodes;
  size_t input = 0;
  size_t output = 0;
};

// The graph of a model (node 0 its input; its nodes in the order the layers are called).
FunctionalGraph functional_graph(const std::vector<LayerTree>& model);

// The nodes in Keras' model.layers order: the input's first, then by depth, deepest first, and
// within a depth by when the walk from the output first meets them.
std::vector<size_t> keras_layer_order(const FunctionalGraph& graph);

// A layer of the model as Keras' model.layers lists it: its type as Sequential::layer_types()
// names it ("conv2d", "bidirectional_lstm"; empty for a block's Add), the start of its
// parameters' names where it has them (Note [parameter names]: "layers.3" or, inside a block,
// "layers.3.shortcut.0"), and the model's layer it is or is inside (`top`, with `inner` for a
// block's layers and Add).
struct KerasLayerRef {
  std::string type;
  std::string prefix;
  size_t top = 0;
  bool inner = false;
};

// A leaf's layer: its type as Sequential::layer_types() names it (empty: a block's Add, or no
// layer of the model, as Keras' linear Activation), and whether it has parameters.
struct LeafLayer {
  std::string type;
  bool parameters = false;
};
LeafLayer leaf_layer(const YAML::Node& layer);  // a layer of a model config

// `leaves[leaf]`: each leaf's layer; `graph`: the model's, whose nodes but the input are the
// leaves. Every layer of the model (each node but the input), in Keras' order of `graph`.
std::vector<KerasLayerRef> keras_layer_refs(const std::vector<LayerTree>& model,
                                            const FunctionalGraph& graph,
                                            const std::vector<LeafLayer>& leaves);

// A model config's `layers` (blocks' layers among them) in the order of the functional model
// ddp-trainer writes for it: a Sequential's, for a model without blocks.
std::vector<KerasLayerRef> keras_layer_refs(const YAML::Node& layers);

}  // namespace ddp::keras
