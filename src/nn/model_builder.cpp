#include "nn/model_builder.h"

#include <algorithm>

#include "core/error.h"
#include "core/machine.h"
#include "nn/activation.h"
#include "nn/batch_norm.h"
#include "nn/bilinear_upsampling2d.h"
#include "nn/conv2d.h"
#include "nn/conv2d_transpose.h"
#include "nn/dense.h"
#include "nn/depthwise_conv2d.h"
#include "nn/dropout.h"
#include "nn/layer_norm.h"
#include "nn/layer_windows.h"
#include "nn/leaky_relu.h"
#include "nn/pooling2d.h"
#include "nn/rescaling.h"
#include "nn/reshape.h"
#include "nn/residual.h"
#include "nn/sequence_layers.h"
#include "nn/softmax.h"
#include "nn/upsampling2d.h"
#include "nn/zero_padding2d.h"

namespace ddp {

namespace {

// Keras' names of the elementwise activations, each a layer type and a dense or conv2d
// `activation`; "swish" and "hard_swish" are Keras' other names for SiLU and hard SiLU.
const std::vector<std::pair<std::string, Activation>>& elementwise_activations() {
  static const std::vector<std::pair<std::string, Activation>> table = {
      {"relu", Activation::kRelu},          {"tanh", Activation::kTanh},
      {"sigmoid", Activation::kSigmoid},    {"elu", Activation::kElu},
      {"selu", Activation::kSelu},          {"softplus", Activation::kSoftplus},
      {"softsign", Activation::kSoftsign},  {"gelu", Activation::kGelu},
      {"silu", Activation::kSilu},          {"swish", Activation::kSilu},
      {"relu6", Activation::kRelu6},        {"hard_sigmoid", Activation::kHardSigmoid},
      {"hard_silu", Activation::kHardSilu}, {"hard_swish", Activation::kHardSilu},
      {"mish", Activation::kMish},          {"gelu_tanh", Activation::kGeluTanh}};
  return table;
}

Activation elementwise(const std::string& name) {
  for (const auto& [known, act] : elementwise_activations())
    if (name == known) return act;
  return Activation::kLinear;
}

// `first`, then the elementwise activations' names and leaky_relu (a layer with a parameter,
// LeakyRelu), then `last`.
std::vector<std::string> with_activations(std::vector<std::string> first,
                                          const std::vector<std::string>& last) {
  for (const auto& entry : elementwise_activations()) first.push_back(entry.first);
  first.push_back("leaky_relu");
  first.insert(first.end(), last.begin(), last.end());
  return first;
}

}  // namespace

const std::vector<std::string>& layer_types() {
  static const std::vector<std::string> types = with_activations({"dense",
                                                                  "conv2d",
                                                                  "conv1d",
                                                                  "conv2d_transpose",
                                                                  "conv1d_transpose",
                                                                  "depthwise_conv2d",
                                                                  "max_pooling2d",
                                                                  "average_pooling2d",
                                                                  "max_pooling1d",
                                                                  "average_pooling1d",
                                                                  "global_average_pooling2d",
                                                                  "global_max_pooling2d",
                                                                  "embedding",
                                                                  "position_embedding",
                                                                  "global_average_pooling1d",
                                                                  "global_max_pooling1d",
                                                                  "up_sampling2d",
                                                                  "up_sampling1d",
                                                                  "zero_padding2d",
                                                                  "zero_padding1d",
                                                                  "lstm",
                                                                  "gru",
                                                                  "simple_rnn",
                                                                  "transformer_encoder",
                                                                  "dropout",
                                                                  "spatial_dropout1d",
                                                                  "spatial_dropout2d",
                                                                  "batch_normalization",
                                                                  "layer_normalization",
                                                                  "rms_normalization",
                                                                  "flatten",
                                                                  "reshape",
                                                                  "rescaling",
                                                                  "masking",
                                                                  "residual"},
                                                                 {"softmax"});
  return types;
}

const std::vector<std::string>& activation_names() {
  static const std::vector<std::string> names = with_activations({"linear"}, {"softmax"});
  return names;
}

const std::vector<std::string>& elementwise_activation_names() {
  static const std::vector<std::string> names = with_activations({"linear"}, {});
  return names;
}

const std::vector<std::string>& simple_rnn_activation_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all = elementwise_activation_names();
    std::erase(all, "leaky_relu");
    return all;
  }();
  return names;
}

namespace {

// A reshape layer's output shape: its target_shape, a -1 in it standing for what is left of the
// input's elements; names the layer when they are not as many.
Shape reshaped(const LayerSpec& spec, const Shape& input) {
  std::vector<int64_t> dims = spec.target_shape;
  int64_t known = 1;
  for (const int64_t d : dims) known *= d == -1 ? 1 : d;
  const auto unknown = std::find(dims.begin(), dims.end(), -1);
  if (unknown != dims.end() && known > 0 && input.numel() % known == 0)
    *unknown = input.numel() / known;
  const Shape out(dims);
  if (unknown == dims.end() ? known != input.numel() : out.numel() != input.numel())
    throw ConfigError(spec.path + ": target_shape " + Shape(spec.target_shape).str() +
                      " does not hold the " + std::to_string(input.numel()) +
                      " values of its input " + input.str());
  return out;
}

// Note [padding masks]: the layer whose padding mask reaches the layer after `spec` (null: none;
// a mask_zero embedding or a masking layer), from the one that reaches `spec`; a layer that would
// drop it, where Keras' would take it or drop it silently, is refused by name.
const LayerSpec* passed_mask(const LayerSpec* masking, const LayerSpec& spec) {
  if (spec.type == "embedding") return spec.mask_zero ? &spec : nullptr;
  if (spec.type == "masking") return &spec;
  if (!masking) return nullptr;
  if (is_recurrent(spec.type)) return spec.return_sequences ? masking : nullptr;
  if (spec.type == "global_average_pooling1d") return nullptr;  // averages the real steps
  // Layers of one position at a time (MaskPassingLayer), as Keras' pass it.
  const auto& activations = elementwise_activation_names();
  if (spec.type == "dropout" || spec.type == "spatial_dropout1d" || spec.type == "dense" ||
      spec.type == "layer_normalization" || spec.type == "rms_normalization" ||
      spec.type == "softmax" || spec.type == "transformer_encoder" ||
      spec.type == "position_embedding" ||
      std::ranges::find(activations, spec.type) != activations.end())
    return masking;
  throw ConfigError(spec.path + ": " + spec.type + " after " + masking->path +
                    (masking->type == "masking" ? " (masking)" : " (mask_zero)") +
                    ": the padding mask reaches it, and only recurrent layers, "
                    "global_average_pooling1d, transformer_encoder, position_embedding and "
                    "layers of one step at a time (dense, dropout, activations, "
                    "layer_normalization, rms_normalization) take masks here");
}

}  // namespace

bool is_convolution(const std::string& type) {
  return type == "conv2d" || type == "conv1d" || type == "conv2d_transpose" ||
         type == "conv1d_transpose" || type == "depthwise_conv2d";
}

bool is_recurrent(const std::string& type) {
  return type == "lstm" || type == "gru" || type == "simple_rnn";
}

bool has_parameters(const std::string& type) {
  return type == "dense" || is_convolution(type) || type == "embedding" || is_recurrent(type) ||
         type == "batch_normalization" || type == "layer_normalization" ||
         type == "rms_normalization" || type == "transformer_encoder" ||
         type == "position_embedding" || type == "residual";
}

namespace {

// What the layers built so far add up to.
struct Built {
  // Every parameter costs 16 bytes to train (weight, gradient, two optimizer moments): a model
  // that cannot fit is refused naming the layer, before anything is allocated.
  uint64_t budget = memory_limit_bytes() / 16;
  uint64_t parameters = 0;
  const LayerSpec* masking = nullptr;  // the layer whose padding mask is still passed on
  std::map<const LayerSpec*, Shape>* output_shapes = nullptr;  // where asked, each layer's
};

std::unique_ptr<Layer> residual_block(const LayerSpec& spec, const Shape& input, Built& built);

// Note [fused activations]: a dense or conv2d layer applies ReLU, tanh or sigmoid inside its own
// kernels (on the product while it is in cache) and keeps only its output, from which backward
// reads the derivative (1 where y > 0, 1 - y^2, y (1 - y)). ELU, SELU, softplus, softsign, GELU and
// SiLU have derivatives that need the pre-activation (GELU's and SiLU's are not functions of the
// output at all), and leaky ReLU a parameter the fused kernels do not take, so such a layer is
// built as the linear layer followed by an ActivationLayer (or a LeakyRelu), whose backward reads
// its input: one more pass over the output and one more saved tensor; the
// parameters and their names are the layer's as written.
//
// Appends the layers of `specs` to `layers` from an input of `shape`: the model's (`top`), or a
// residual block's branch (Note [residual blocks]). Returns the last one's output shape.
Shape append_layers(std::vector<std::unique_ptr<Layer>>& layers, Shape shape,
                    const std::vector<LayerSpec>& specs, bool top, Built& built) {
  const uint64_t budget = built.budget;
  uint64_t& parameters = built.parameters;
  for (const LayerSpec& spec : specs) {
    built.masking = passed_mask(built.masking, spec);
    if (spec.axis != -1 && spec.axis != static_cast<int64_t>(shape.rank()))
      throw ConfigError(spec.path + ".axis: " + std::to_string(spec.axis) + " of an input " +
                        shape.str() + " (and the batch's axis 0) is not its last axis, " +
                        std::to_string(shape.rank()) + " (or -1), over which " + spec.type +
                        " normalizes");
    // A final softmax or sigmoid is a layer of its own, which a loss that applies it (fused, on
    // logits) can leave out (Sequential::set_output_logits); so is an activation whose derivative
    // needs its input (Note [fused activations]). Only dense and convolution layers fuse theirs;
    // a simple_rnn applies its own at every step.
    const bool last = top && &spec == &specs.back();
    const Activation act = elementwise(spec.activation);
    const bool fuses = spec.type == "dense" || is_convolution(spec.type);
    const bool leaky = fuses && spec.activation == "leaky_relu";
    const bool split =
        fuses && (spec.activation == "softmax" || (last && spec.activation == "sigmoid") || leaky ||
                  !derivative_from_output(act));
    const Activation fused = split ? Activation::kLinear : act;
    if (std::unique_ptr<Layer> sequence =
            sequence_layer(spec, shape, top && layers.empty(), act, budget, parameters)) {
      layers.push_back(std::move(sequence));
    } else if (spec.type == "residual") {
      layers.push_back(residual_block(spec, shape, built));
    } else if (spec.type == "dense") {  // over the last axis, at each position before it
      if (spec.units <= 0)
        throw ConfigError(spec.path + ".units: must be > 0, got " + std::to_string(spec.units));
      if (spec.time_distributed && shape.rank() < 2)
        throw ConfigError(spec.path + ".time_distributed: over the steps of a sequence, and the " +
                          "layer's input is " + shape.str());
      const int64_t in = shape.dims().back();
      std::vector<int64_t> positions = shape.dims();
      positions.pop_back();
      const auto fan_in = static_cast<uint64_t>(in) + (spec.use_bias ? 1 : 0);
      const auto units = static_cast<uint64_t>(spec.units);
      if (units > (budget - parameters) / fan_in)
        throw ConfigError(spec.path + ".units: " + std::to_string(spec.units) + " units of " +
                          std::to_string(in) + " inputs take the model past " +
                          std::to_string(budget) + " parameters, what this process's " +
                          std::to_string(memory_limit_bytes() >> 20) +
                          " MiB can train (16 bytes each)");
      parameters += units * fan_in;
      layers.push_back(std::make_unique<Dense>(in, spec.units, fused, spec.use_bias,
                                               Shape(std::move(positions))));
    } else if (spec.type == "depthwise_conv2d") {  // Note [depthwise convolution]
      const Window2d w = image_window(spec, shape);
      const auto per_channel = static_cast<uint64_t>(w.kernel_h * w.kernel_w) + 1;
      if (static_cast<uint64_t>(w.channels) > (budget - parameters) / per_channel)
        throw ConfigError(spec.path + ".kernel_size: " + std::to_string(w.kernel_h) + "x" +
                          std::to_string(w.kernel_w) + " kernels take the model past " +
                          std::to_string(budget) +
                          " parameters, what this process's memory can train");
      parameters += static_cast<uint64_t>(w.channels) * per_channel;
      layers.push_back(std::make_unique<DepthwiseConv2D>(w, fused, spec.use_bias));
    } else if (is_convolution(spec.type)) {
      const bool one_row = spec.type == "conv1d" || spec.type == "conv1d_transpose";
      const bool transposed = spec.type == "conv2d_transpose" || spec.type == "conv1d_transpose";
      const Window2d w = transposed ? transposed_view(spec, shape)
                         : one_row  ? steps_window(spec, shape)
                                    : image_window(spec, shape);
      const int64_t channels = shape.dims().back();
      const auto fan_in =
          static_cast<uint64_t>(w.kernel_h * w.kernel_w * channels) + (spec.use_bias ? 1 : 0);
      const auto filters = static_cast<uint64_t>(spec.units);
      if (filters > (budget - parameters) / fan_in)
        throw ConfigError(spec.path + ".filters: " + std::to_string(spec.units) +
                          " filters take the model past " + std::to_string(budget) +
                          " parameters, what this process's memory can train");
      parameters += filters * fan_in;
      if (transposed)
        layers.push_back(
            std::make_unique<Conv2DTranspose>(w, channels, fused, spec.use_bias, one_row));
      else
        layers.push_back(std::make_unique<Conv2D>(w, spec.units, fused, spec.use_bias, one_row));
    } else if (spec.type == "max_pooling2d" || spec.type == "average_pooling2d") {
      layers.push_back(std::make_unique<Pooling2D>(
          spec.type == "max_pooling2d" ? Pooling2D::Kind::kMax : Pooling2D::Kind::kAverage,
          image_window(spec, shape)));
    } else if (spec.type == "max_pooling1d" || spec.type == "average_pooling1d") {
      layers.push_back(std::make_unique<Pooling2D>(
          spec.type == "max_pooling1d" ? Pooling2D::Kind::kMax1D : Pooling2D::Kind::kAverage1D,
          steps_window(spec, shape)));
    } else if (spec.type == "global_average_pooling2d" || spec.type == "global_max_pooling2d") {
      layers.push_back(std::make_unique<Pooling2D>(spec.type == "global_max_pooling2d"
                                                       ? Pooling2D::Kind::kGlobalMax
                                                       : Pooling2D::Kind::kGlobalAverage,
                                                   image_window(spec, shape, /*global=*/true)));
    } else if (spec.type == "global_average_pooling1d" || spec.type == "global_max_pooling1d") {
      if (shape.rank() != 2)
        throw ConfigError(spec.path + ": " + spec.type + " needs an input of (steps, " +
                          "channels), an embedding's output, but gets " + shape.str());
      layers.push_back(std::make_unique<Pooling2D>(
          spec.type == "global_max_pooling1d" ? Pooling2D::Kind::kGlobalMax1D
                                              : Pooling2D::Kind::kGlobalAverage1D,
          Window2d::make(1, shape[0], shape[1], 1, shape[0], 1, 1, false)));
    } else if (spec.bilinear) {  // an up_sampling2d's
      require_image_or_steps(spec, shape, false);
      layers.push_back(
          std::make_unique<BilinearUpSampling2D>(shape, spec.window[0], spec.window[1]));
    } else if (spec.type == "zero_padding2d" || spec.type == "zero_padding1d") {
      layers.push_back(std::make_unique<ZeroPadding2D>(padded_window(spec, shape),
                                                       spec.type == "zero_padding1d"));
    } else if (spec.type == "up_sampling2d" || spec.type == "up_sampling1d") {
      layers.push_back(std::make_unique<UpSampling2D>(upsampling_blocks(spec, shape),
                                                      spec.type == "up_sampling1d"));
    } else if (spec.type == "dropout") {
      layers.push_back(std::make_unique<Dropout>(shape, spec.rate));
    } else if (spec.type == "spatial_dropout1d" || spec.type == "spatial_dropout2d") {
      const bool images = spec.type == "spatial_dropout2d";
      if (shape.rank() != (images ? 3u : 2u))
        throw ConfigError(spec.path + ": " + spec.type + " needs an input of " +
                          (images ? "(height, width, channels), an image," : "(steps, channels),") +
                          " but gets " + shape.str());
      layers.push_back(std::make_unique<Dropout>(shape, spec.rate, /*spatial=*/true));
    } else if (spec.type == "batch_normalization") {
      if (!layers.empty() && dynamic_cast<const Softmax*>(layers.back().get()))
        throw ConfigError(spec.path + ": batch_normalization after a softmax would normalize " +
                          "probabilities; put it before the activation (a linear layer, then " +
                          "batch_normalization, then the activation)");
      layers.push_back(std::make_unique<BatchNorm>(shape, spec.momentum, spec.epsilon, spec.sync));
    } else if (spec.type == "layer_normalization" || spec.type == "rms_normalization") {
      layers.push_back(
          std::make_unique<LayerNorm>(shape, spec.epsilon, spec.type == "rms_normalization"));
    } else if (spec.type == "flatten") {
      layers.push_back(std::make_unique<Reshape>(Shape{shape.numel()}, "Flatten"));
    } else if (spec.type == "rescaling") {
      layers.push_back(std::make_unique<Rescaling>(shape, spec.scale, spec.offset));
    } else if (spec.type == "reshape") {
      layers.push_back(std::make_unique<Reshape>(reshaped(spec, shape), "Reshape"));
    } else if (spec.type == "softmax") {
      layers.push_back(std::make_unique<Softmax>(shape));
    } else if (spec.type == "leaky_relu") {
      layers.push_back(std::make_unique<LeakyRelu>(shape, spec.negative_slope));
    } else {
      layers.push_back(std::make_unique<ActivationLayer>(elementwise(spec.type), shape));
    }
    if (!spec.trainable) layers.back()->freeze();
    layers.back()->penalize_weight(spec.l1, spec.l2);  // Note [weight penalty]
    shape = layers.back()->output_shape();
    if (built.output_shapes) built.output_shapes->emplace(&spec, shape);
    if (split && spec.activation == "softmax")
      layers.push_back(std::make_unique<Softmax>(shape));
    else if (leaky)
      layers.push_back(std::make_unique<LeakyRelu>(shape, kLeakyReluActivationSlope));
    else if (split)
      layers.push_back(std::make_unique<ActivationLayer>(act, shape));
  }
  return shape;
}

std::unique_ptr<Layer> residual_block(const LayerSpec& spec, const Shape& input, Built& built) {
  std::vector<std::unique_ptr<Layer>> block, shortcut;
  const Shape out = append_layers(block, input, spec.block, false, built);
  const Shape side =
      spec.shortcut.empty() ? input : append_layers(shortcut, input, spec.shortcut, false, built);
  if (out != side)
    throw ConfigError(
        spec.path + ": its layers end in " + out.str() + " and its " +
        (spec.shortcut.empty() ? "input (the identity shortcut) is " : "shortcut ends in ") +
        side.str() + ", which are added: they must match (a strided or widening block takes a " +
        "shortcut of a 1x1 conv2d with its strides and filters)");
  if (!spec.trainable)  // Note [frozen layers]: the block's layers with it
    for (auto* stack : {&block, &shortcut})
      for (const auto& layer : *stack) layer->freeze();
  return std::make_unique<Residual>(input, std::move(block), std::move(shortcut));
}

}  // namespace

std::unique_ptr<Sequential> build_sequential(ComputeBackend& backend, const Shape& input,
                                             const std::vector<LayerSpec>& specs) {
  std::vector<std::unique_ptr<Layer>> layers;
  Built built;
  append_layers(layers, input, specs, /*top=*/true, built);
  auto model = std::make_unique<Sequential>(backend, input, std::move(layers));
  if (const LayerSpec* masking = built.masking)
    model->set_output_mask_origin(masking->path + (masking->type == "masking" ? "" : ".mask_zero"));
  return model;
}

std::map<const LayerSpec*, Shape> layer_output_shapes(const Shape& input,
                                                      const std::vector<LayerSpec>& specs) {
  std::map<const LayerSpec*, Shape> shapes;
  std::vector<std::unique_ptr<Layer>> layers;
  Built built;
  built.output_shapes = &shapes;
  append_layers(layers, input, specs, /*top=*/true, built);
  return shapes;
}

}  // namespace ddp
