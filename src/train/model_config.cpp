#include "train/model_config.h"

#include <algorithm>
#include <array>
#include <optional>

#include "core/error.h"
#include "train/augment_layers.h"
#include "train/config_reader.h"

namespace ddp {
namespace {

// Keras' kernel_regularizer: {l1: a, l2: b}, either or both (Note [weight penalty]).
void parse_regularizer(ConfigNode& layer, LayerSpec& spec) {
  if (!layer.has("kernel_regularizer")) return;
  ConfigNode node = layer.child("kernel_regularizer");
  for (auto [key, into] : {std::pair{"l1", &spec.l1}, std::pair{"l2", &spec.l2}}) {
    const double value = node.get(key, 0.0);
    if (value < 0) node.fail(key, "must be >= 0, got " + show_number(value));
    *into = static_cast<float>(value);
  }
  node.finish();
}

// Keras' output_padding of a transposed convolution (Note [transposed convolution]), after its
// strides: each >= 0 and below its stride (Keras' rule).
void parse_output_padding(ConfigNode& layer, LayerSpec& spec, bool one_row) {
  if (!layer.has("output_padding")) return;
  spec.output_padding =
      one_row ? std::array<int64_t, 2>{0, layer.require<int64_t>("output_padding")}
              : height_width(layer, "output_padding", std::nullopt, /*zero_allowed=*/true);
  for (int axis : {0, 1})
    if (spec.output_padding[axis] < 0 || spec.output_padding[axis] >= spec.strides[axis])
      layer.fail("output_padding", "must be >= 0 and below the stride " +
                                       std::to_string(spec.strides[axis]) + ", got " +
                                       std::to_string(spec.output_padding[axis]));
}

// Note [zero padding]: Keras' padding: one integer for every side, a pair (ZeroPadding2D's rows
// and columns, each on both sides; ZeroPadding1D's steps before and after), or ZeroPadding2D's
// [[top, bottom], [left, right]]; each >= 0.
std::array<int64_t, 4> zero_padding(ConfigNode& layer, bool one_row) {
  if (!one_row && layer.has("padding") && layer.is_list_of_lists("padding")) {
    const auto sides = layer.require<std::vector<std::vector<int64_t>>>("padding");
    if (sides.size() != 2 || sides[0].size() != 2 || sides[1].size() != 2)
      layer.fail("padding",
                 "expected one integer, [rows, columns] or [[top, bottom], [left, "
                 "right]]");
    for (const auto& side : sides)
      for (const int64_t p : side)
        if (p < 0) layer.fail("padding", "must be >= 0, got " + std::to_string(p));
    return {sides[0][0], sides[0][1], sides[1][0], sides[1][1]};
  }
  const auto pair = height_width(layer, "padding", std::array<int64_t, 2>{1, 1}, true);
  if (one_row) return {0, 0, pair[0], pair[1]};
  return {pair[0], pair[0], pair[1], pair[1]};
}

LayerSpec parse_layer(ConfigNode& layer, const std::string& file, int depth);

// Residual blocks inside blocks, at most this deep: a hostile config's nesting ends in a one-line
// error, not in a stack overflow.
constexpr int kMaxBlockDepth = 32;

// Note [residual blocks]: a block's layers keep their input's layout (no flatten or reshape) and
// start no padding mask; they are frozen with the block, not one by one.
std::vector<LayerSpec> parse_stack(ConfigNode& block, const std::string& key,
                                   const std::string& file, int depth) {
  if (depth > kMaxBlockDepth)
    block.fail(key, "residual blocks nested more than " + std::to_string(kMaxBlockDepth) + " deep");
  std::vector<LayerSpec> stack;
  for (ConfigNode layer : block.list(key)) {
    if (layer.has("trainable"))
      layer.fail("trainable",
                 "a residual block's layers are frozen as one: give trainable to the "
                 "block");
    stack.push_back(parse_layer(layer, file, depth));
    const std::string& type = stack.back().type;
    if (type == "flatten" || type == "reshape" || type == "masking" || type == "embedding" ||
        type == "position_embedding")
      layer.fail("type", type + " cannot be inside a residual block (its layers keep the " +
                             "input's layout and add to it)");
  }
  return stack;
}

// One entry of a layers list, a model's (depth 0) or a residual block's (its nesting depth).
LayerSpec parse_layer(ConfigNode& layer, const std::string& file, int depth) {
  const bool in_block = depth > 0;
  LayerSpec spec;
  spec.path = file + ": " + layer.path();
  spec.type = layer.choice("type", layer_types());
  if (spec.type == "residual") {
    spec.block = parse_stack(layer, "layers", file, depth + 1);
    if (layer.has("shortcut")) spec.shortcut = parse_stack(layer, "shortcut", file, depth + 1);
  }
  if (spec.type == "dense" || is_convolution(spec.type)) {
    parse_regularizer(layer, spec);
    spec.use_bias = layer.get("use_bias", true);
  }
  // Keras' rule too: a dilated kernel moves one step at a time (Note [dilated convolution]).
  const auto above_one = [](const std::array<int64_t, 2>& a) { return a[0] > 1 || a[1] > 1; };
  const auto check_dilation = [&] {
    if (above_one(spec.dilation) && above_one(spec.strides))
      layer.fail("dilation_rate",
                 "a dilated convolution takes strides of 1 (as Keras' does), got "
                 "strides " +
                     std::to_string(spec.strides[0]) + "x" + std::to_string(spec.strides[1]));
  };
  if (spec.type == "dense") {
    spec.units = positive(layer, "units", layer.require<int64_t>("units"));
    spec.activation = layer.choice("activation", activation_names(), "linear");
    if (layer.has("time_distributed"))  // Keras' name alone: not written where not given
      spec.time_distributed = layer.get("time_distributed", false);
  } else if (spec.type == "conv2d" || spec.type == "conv2d_transpose") {
    spec.units = positive(layer, "filters", layer.require<int64_t>("filters"));
    spec.window = height_width(layer, "kernel_size", std::nullopt);
    spec.strides = height_width(layer, "strides", std::array<int64_t, 2>{1, 1});
    if (spec.type == "conv2d_transpose") parse_output_padding(layer, spec, false);
    if (spec.type == "conv2d")
      spec.dilation = height_width(layer, "dilation_rate", std::array<int64_t, 2>{1, 1});
    spec.same_padding = layer.choice("padding", {"valid", "same"}, "valid") == "same";
    spec.activation = layer.choice("activation", elementwise_activation_names(), "linear");
    check_dilation();
  } else if (spec.type == "depthwise_conv2d") {  // Keras' names; a kernel for each channel
    spec.window = height_width(layer, "kernel_size", std::nullopt);
    spec.strides = height_width(layer, "strides", std::array<int64_t, 2>{1, 1});
    spec.dilation = height_width(layer, "dilation_rate", std::array<int64_t, 2>{1, 1});
    spec.same_padding = layer.choice("padding", {"valid", "same"}, "valid") == "same";
    spec.activation = layer.choice("activation", elementwise_activation_names(), "linear");
    if (const int64_t m = layer.get<int64_t>("depth_multiplier", 1); m != 1)
      layer.fail("depth_multiplier",
                 "1 alone (a kernel for each channel, MobileNets'), got " + std::to_string(m));
    check_dilation();
  } else if (spec.type == "conv1d" || spec.type == "conv1d_transpose") {  // integer sizes
    spec.units = positive(layer, "filters", layer.require<int64_t>("filters"));
    spec.window = {1, positive(layer, "kernel_size", layer.require<int64_t>("kernel_size"))};
    spec.strides = {1, positive(layer, "strides", layer.get<int64_t>("strides", 1))};
    if (spec.type == "conv1d") {
      spec.dilation = {1, positive(layer, "dilation_rate", layer.get<int64_t>("dilation_rate", 1))};
      const std::string padding = layer.choice("padding", {"valid", "same", "causal"}, "valid");
      spec.same_padding = padding == "same";
      spec.causal_padding = padding == "causal";
    } else {
      spec.same_padding = layer.choice("padding", {"valid", "same"}, "valid") == "same";
    }
    spec.activation = layer.choice("activation", elementwise_activation_names(), "linear");
    if (spec.type == "conv1d_transpose") parse_output_padding(layer, spec, true);
    check_dilation();
  } else if (spec.type == "max_pooling1d" || spec.type == "average_pooling1d") {  // one row
    spec.window = {1, positive(layer, "pool_size", layer.get<int64_t>("pool_size", 2))};
    spec.strides = {1, positive(layer, "strides", layer.get<int64_t>("strides", spec.window[1]))};
    spec.same_padding = layer.choice("padding", {"valid", "same"}, "valid") == "same";
  } else if (is_recurrent(spec.type)) {
    // Keras' names; the LSTM's and GRU's activations (tanh, sigmoid) and the GRU's reset_after
    // as Keras' defaults, the SimpleRNN's activation as Keras' (tanh) unless given
    spec.units = positive(layer, "units", layer.require<int64_t>("units"));
    spec.return_sequences = layer.get("return_sequences", false);
    spec.bidirectional = layer.get("bidirectional", false);
    spec.rate = static_cast<float>(in_unit_interval(layer, "dropout", layer.get("dropout", 0.0)));
    spec.recurrent_rate = static_cast<float>(
        in_unit_interval(layer, "recurrent_dropout", layer.get("recurrent_dropout", 0.0)));
    spec.use_bias = layer.get("use_bias", true);
    if (spec.type == "simple_rnn")
      spec.activation = layer.choice("activation", simple_rnn_activation_names(), "tanh");
  } else if (spec.type == "transformer_encoder") {  // KerasHub's names and defaults
    spec.heads = positive(layer, "num_heads", layer.require<int64_t>("num_heads"));
    spec.intermediate =
        positive(layer, "intermediate_dim", layer.require<int64_t>("intermediate_dim"));
    spec.activation = layer.choice("activation", simple_rnn_activation_names(), "relu");
    spec.rate = static_cast<float>(in_unit_interval(layer, "dropout", layer.get("dropout", 0.0)));
    spec.epsilon = static_cast<float>(
        positive_number(layer, "layer_norm_epsilon", layer.get("layer_norm_epsilon", 1e-5)));
    spec.normalize_first = layer.get("normalize_first", false);
    spec.causal = layer.get("causal", false);
  } else if (spec.type == "embedding") {  // Keras' names
    spec.vocabulary = positive(layer, "input_dim", layer.require<int64_t>("input_dim"));
    spec.units = positive(layer, "output_dim", layer.require<int64_t>("output_dim"));
    spec.mask_zero = layer.get("mask_zero", false);
  } else if (spec.type == "max_pooling2d" || spec.type == "average_pooling2d") {
    spec.window = height_width(layer, "pool_size", std::array<int64_t, 2>{2, 2});
    spec.strides = height_width(layer, "strides", spec.window);  // Keras: the pool size
    spec.same_padding = layer.choice("padding", {"valid", "same"}, "valid") == "same";
  } else if (spec.type == "zero_padding2d" || spec.type == "zero_padding1d") {
    spec.zero_padding = zero_padding(layer, spec.type == "zero_padding1d");
  } else if (spec.type == "up_sampling2d" || spec.type == "up_sampling1d") {  // Keras' size
    spec.window =
        spec.type == "up_sampling1d"
            ? std::array<int64_t, 2>{1, positive(layer, "size", layer.get<int64_t>("size", 2))}
            : height_width(layer, "size", std::array<int64_t, 2>{2, 2});
    // Keras' default, and for images bilinear (Note [bilinear upsampling])
    spec.bilinear =
        layer.choice("interpolation",
                     spec.type == "up_sampling1d" ? std::vector<std::string>{"nearest"}
                                                  : std::vector<std::string>{"nearest", "bilinear"},
                     "nearest") == "bilinear";
  } else if (spec.type == "masking") {  // Keras' default
    spec.mask_value = static_cast<float>(layer.get("mask_value", 0.0));
  } else if (spec.type == "rescaling") {
    spec.scale = static_cast<float>(layer.require<double>("scale"));  // finite, as any number
    spec.offset = static_cast<float>(layer.get("offset", 0.0));
  } else if (spec.type == "reshape") {
    spec.target_shape = layer.require<std::vector<int64_t>>("target_shape");
    const auto unknowns = std::count(spec.target_shape.begin(), spec.target_shape.end(), -1);
    if (spec.target_shape.empty() || unknowns > 1 ||
        std::any_of(spec.target_shape.begin(), spec.target_shape.end(),
                    [](int64_t d) { return d <= 0 && d != -1; }))
      layer.fail("target_shape", "sizes > 0, with at most one -1 (what is left), got " +
                                     Shape(spec.target_shape).str());
  } else if (spec.type == "leaky_relu") {  // Keras' LeakyReLU: >= 0 (a negative one is PReLU's)
    const double slope = layer.get("negative_slope", 0.3);
    if (!(slope >= 0)) layer.fail("negative_slope", "must be >= 0, got " + show_number(slope));
    spec.negative_slope = static_cast<float>(slope);
  }
  if (spec.type == "batch_normalization" || spec.type == "layer_normalization" ||
      spec.type == "rms_normalization") {
    spec.axis = layer.get<int64_t>("axis", -1);  // the last one's number: checked by the builder
    if (spec.axis < 1 && spec.axis != -1)
      layer.fail("axis",
                 "normalizes over the last axis: -1, or its number counting the batch's "
                 "0, not " +
                     std::to_string(spec.axis));
  }
  if (spec.type == "layer_normalization" || spec.type == "rms_normalization") {
    // Keras' default epsilons
    const double epsilon = spec.type == "layer_normalization" ? 0.001 : 1e-6;
    spec.epsilon =
        static_cast<float>(positive_number(layer, "epsilon", layer.get("epsilon", epsilon)));
  } else if (spec.type == "dropout" || spec.type == "spatial_dropout1d" ||
             spec.type == "spatial_dropout2d") {
    spec.rate = static_cast<float>(in_unit_interval(layer, "rate", layer.require<double>("rate")));
  } else if (spec.type == "batch_normalization") {  // Keras' defaults
    spec.momentum =
        static_cast<float>(in_unit_interval(layer, "momentum", layer.get("momentum", 0.99)));
    spec.epsilon =
        static_cast<float>(positive_number(layer, "epsilon", layer.get("epsilon", 0.001)));
    spec.sync = layer.get("sync", false);
  }
  if (!in_block && has_parameters(spec.type))  // a block's layers: parse_stack
    spec.trainable = layer.get("trainable", true);
  else if (!in_block && layer.has("trainable"))
    layer.fail("trainable", spec.type + " has no parameters to freeze");
  layer.finish();
  return spec;
}

}  // namespace

// `model`: the input shape, if given, and the layers.
void parse_model(ConfigNode& root, Config& config) {
  ConfigNode model = root.child("model");
  if (model.has("input")) {
    config.input_shape = model.get<std::vector<int64_t>>("input", {});
    for (int64_t d : *config.input_shape)
      if (d <= 0) model.fail("input", "dimensions must be > 0");
  }
  for (ConfigNode layer : model.list("layers")) {
    static const std::vector<std::string> types = [] {
      std::vector<std::string> all = layer_types();
      all.insert(all.end(), augment_layer_types().begin(), augment_layer_types().end());
      return all;
    }();
    const std::string type = layer.choice("type", types);
    if (is_augment_layer(type)) {  // Note [augmentation layers]: no layer of the model
      parse_augment_layer(layer, type, config.layers, config.augment_layers);
      layer.finish();
      continue;
    }
    config.layers.push_back(parse_layer(layer, config.file, /*depth=*/0));
  }
  const bool frozen = std::any_of(config.layers.begin(), config.layers.end(),
                                  [](const LayerSpec& s) { return !s.trainable; });
  const bool trained =
      std::any_of(config.layers.begin(), config.layers.end(),
                  [](const LayerSpec& s) { return s.trainable && has_parameters(s.type); });
  if (frozen && !trained)
    model.fail("layers",
               "every layer with parameters is frozen (trainable: false): nothing is "
               "left to train");
  model.finish();
}

}  // namespace ddp
