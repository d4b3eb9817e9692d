#include "model_arguments.h"

#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "keras_objects.h"

namespace ddp::python {
namespace {

namespace py = pybind11;

// A Keras shape with its batch axis first (None), as a sample's shape.
std::vector<int64_t> sample_shape(const py::handle& shape, const std::string& where) {
  std::vector<int64_t> out;
  const py::tuple dims = py::tuple(py::reinterpret_borrow<py::object>(shape));
  for (size_t d = 1; d < dims.size(); ++d) {
    if (!py::isinstance<py::int_>(dims[d]) || dims[d].cast<int64_t>() <= 0)
      throw ConfigError(where + ": the input shape " + py::repr(shape).cast<std::string>() +
                        " has a dimension that is not a size");
    out.push_back(dims[d].cast<int64_t>());
  }
  return out;
}

// One item of a list of layers given to the module: a layer of ddp_trainer's, or Keras' layer
// object; none for a keras.Input, whose shape (or a Keras layer's input_shape) goes to
// keras_input.
std::optional<keras::Spec> layer_spec(const py::handle& item, const std::string& where,
                                      std::vector<int64_t>& keras_input) {
  if (py::isinstance<keras::Spec>(item)) return item.cast<keras::Spec>();
  if (py::type::of(item).attr("__name__").cast<std::string>() == "KerasTensor") {
    keras_input = sample_shape(item.attr("shape"), where);  // keras.Input(shape=...)
    return std::nullopt;
  }
  if (!py::hasattr(item, "get_config"))
    throw ConfigError(where + ": a layer of ddp_trainer's or Keras', not " +
                      py::repr(item).cast<std::string>());
  keras::KerasLayer layer =
      of_keras_object(py::reinterpret_borrow<py::object>(item), where,
                      [&where](const nlohmann::json& j) { return keras::keras_layer(j, where); });
  if (!layer.input_shape.empty()) keras_input = std::move(layer.input_shape);
  // Keras 3 keeps a layer's input_shape= argument here, outside its config.
  if (py::hasattr(item, "_input_shape_arg") && !item.attr("_input_shape_arg").is_none())
    keras_input =
        sample_shape(py::make_tuple(py::none()) + py::tuple(item.attr("_input_shape_arg")), where);
  return layer.spec;
}

// A residual block's `layers` or `shortcut` (Note [residual blocks]): layers alone.
std::vector<keras::Spec> block_layers(const py::iterable& layers, const std::string& what) {
  std::vector<keras::Spec> out;
  std::vector<int64_t> input;
  size_t k = 0;
  for (const py::handle item : layers) {
    const std::string where = "Residual: " + what + "[" + std::to_string(k++) + "]";
    std::optional<keras::Spec> spec = layer_spec(item, where, input);
    if (!input.empty())
      throw ConfigError(where + ": an input shape belongs to the model's first layer, not to a " +
                        "residual block's");
    if (spec) out.push_back(std::move(*spec));  // Keras' InputLayer: none
  }
  return out;
}

}  // namespace

ModelArguments model_arguments(const py::iterable& layers, std::vector<int64_t> input_shape) {
  ModelArguments out;
  std::vector<int64_t> keras_input;  // as Keras' objects give it
  size_t k = 0;
  for (const py::handle item : layers)
    if (std::optional<keras::Spec> spec =
            layer_spec(item, "Sequential: layers[" + std::to_string(k++) + "]", keras_input))
      out.layers.push_back(std::move(*spec));
  if (!input_shape.empty() && !keras_input.empty() && input_shape != keras_input)
    throw ConfigError("Sequential: input_shape " + Shape(input_shape).str() +
                      ", and the Keras input's shape is " + Shape(keras_input).str());
  out.input_shape = input_shape.empty() ? std::move(keras_input) : std::move(input_shape);
  return out;
}

namespace {
keras::Spec trained_or_frozen(keras::Spec layer, bool trainable) {
  return trainable ? layer : keras::frozen(layer);
}

// Keras' factor of its random layers: a number, or (lower, upper).
keras::Factor factor(const py::handle& f, const char* name) {
  if (py::isinstance<py::float_>(f) || py::isinstance<py::int_>(f)) return {f.cast<double>()};
  std::vector<double> range;
  try {
    range = f.cast<std::vector<double>>();
  } catch (const py::cast_error&) {
  }
  if (range.size() != 2)
    throw ConfigError(std::string(name) + " " + py::repr(f).cast<std::string>() +
                      ": a number or (lower, upper)");
  return {range[0], range[1]};
}

// Keras' value_range: (low, high).
std::array<double, 2> value_range(const std::vector<double>& range) {
  if (range.size() != 2) throw ConfigError("value_range: (low, high)");
  return {range[0], range[1]};
}

void define_random_layers(py::module_& m) {  // Note [augmentation layers]
  m.def("RandomFlip", &keras::RandomFlip, py::arg("mode") = "horizontal_and_vertical");
  m.def(
      "RandomTranslation",
      [](const py::object& height_factor, const py::object& width_factor,
         const std::string& fill_mode, const std::string& interpolation, double fill_value) {
        return keras::RandomTranslation(factor(height_factor, "height_factor"),
                                        factor(width_factor, "width_factor"), fill_mode,
                                        interpolation, fill_value);
      },
      py::arg("height_factor"), py::arg("width_factor"), py::arg("fill_mode") = "reflect",
      py::arg("interpolation") = "bilinear", py::arg("fill_value") = 0.0);
  m.def(
      "RandomRotation",
      [](const py::object& f, const std::string& fill_mode, const std::string& interpolation,
         double fill_value) {
        return keras::RandomRotation(factor(f, "factor"), fill_mode, interpolation, fill_value);
      },
      py::arg("factor"), py::arg("fill_mode") = "reflect", py::arg("interpolation") = "bilinear",
      py::arg("fill_value") = 0.0);
  m.def(
      "RandomZoom",
      [](const py::object& height_factor, const py::object& width_factor,
         const std::string& fill_mode, const std::string& interpolation, double fill_value) {
        return keras::RandomZoom(factor(height_factor, "height_factor"),
                                 width_factor.is_none()
                                     ? std::nullopt
                                     : std::optional(factor(width_factor, "width_factor")),
                                 fill_mode, interpolation, fill_value);
      },
      py::arg("height_factor"), py::arg("width_factor") = py::none(),
      py::arg("fill_mode") = "reflect", py::arg("interpolation") = "bilinear",
      py::arg("fill_value") = 0.0);
  for (const auto& [name, make] : {std::pair{"RandomContrast", &keras::RandomContrast},
                                   std::pair{"RandomBrightness", &keras::RandomBrightness}})
    m.def(
        name,
        [make](const py::object& f, const std::vector<double>& values) {
          return make(factor(f, "factor"), value_range(values));
        },
        py::arg("factor"), py::arg("value_range") = std::vector<double>{0, 255});
}

// Keras' kernel_size and strides of an image's layer: an int, or (height, width).
using Size = std::variant<int64_t, std::array<int64_t, 2>>;

YAML::Node size_node(const Size& size) {
  return std::holds_alternative<int64_t>(size)
             ? YAML::Node(std::get<int64_t>(size))
             : YAML::Node(std::vector<int64_t>{std::get<1>(size)[0], std::get<1>(size)[1]});
}

keras::Spec with_sizes(keras::Spec spec, const Size& kernel_size, const Size& strides) {
  spec.node["kernel_size"] = size_node(kernel_size);
  spec.node["strides"] = size_node(strides);
  return spec;
}
}  // namespace

void define_layers(py::module_& m) {
  m.def(
      "Dense",
      [](int64_t units, const std::string& activation, bool use_bias, bool trainable) {
        return trained_or_frozen(keras::Dense(units, activation, use_bias), trainable);
      },
      py::arg("units"), py::arg("activation") = "linear", py::arg("use_bias") = true,
      py::arg("trainable") = true);
  // strides after the others: ddp.Conv2D(8, 3, "relu") names its activation third.
  m.def(
      "Conv2D",
      [](int64_t filters, Size kernel_size, const std::string& activation,
         const std::string& padding, bool use_bias, bool trainable, Size strides,
         Size dilation_rate) {
        keras::Spec spec = with_sizes(keras::Conv2D(filters, 1, activation, padding, use_bias),
                                      kernel_size, strides);
        spec.node["dilation_rate"] = size_node(dilation_rate);  // Note [dilated convolution]
        return trained_or_frozen(spec, trainable);
      },
      py::arg("filters"), py::arg("kernel_size"), py::arg("activation") = "linear",
      py::arg("padding") = "valid", py::arg("use_bias") = true, py::arg("trainable") = true,
      py::arg("strides") = 1, py::arg("dilation_rate") = 1);
  m.def(  // Keras' arguments in Keras' order (Note [depthwise convolution])
      "DepthwiseConv2D",
      [](Size kernel_size, Size strides, const std::string& padding, int64_t depth_multiplier,
         Size dilation_rate, const std::string& activation, bool use_bias, bool trainable) {
        keras::Spec spec = with_sizes(keras::DepthwiseConv2D(1, 1, padding, activation, use_bias),
                                      kernel_size, strides);
        spec.node["dilation_rate"] = size_node(dilation_rate);
        spec.node["depth_multiplier"] = depth_multiplier;  // 1, or refused naming the key
        return trained_or_frozen(spec, trainable);
      },
      py::arg("kernel_size"), py::arg("strides") = 1, py::arg("padding") = "valid",
      py::arg("depth_multiplier") = 1, py::arg("dilation_rate") = 1,
      py::arg("activation") = "linear", py::arg("use_bias") = true, py::arg("trainable") = true);
  m.def(
      "Conv1D",
      [](int64_t filters, int64_t kernel_size, int64_t strides, const std::string& activation,
         const std::string& padding, bool use_bias, bool trainable, int64_t dilation_rate) {
        keras::Spec spec =
            keras::Conv1D(filters, kernel_size, strides, activation, padding, use_bias);
        spec.node["dilation_rate"] = dilation_rate;  // Note [dilated convolution]
        return trained_or_frozen(spec, trainable);
      },
      py::arg("filters"), py::arg("kernel_size"), py::arg("strides") = 1,
      py::arg("activation") = "linear", py::arg("padding") = "valid", py::arg("use_bias") = true,
      py::arg("trainable") = true, py::arg("dilation_rate") = 1);
  m.def(
      "Conv2DTranspose",
      [](int64_t filters, Size kernel_size, Size strides, const std::string& activation,
         const std::string& padding, bool use_bias, bool trainable,
         std::optional<Size> output_padding) {
        keras::Spec spec =
            with_sizes(keras::Conv2DTranspose(filters, 1, 1, activation, padding, use_bias),
                       kernel_size, strides);
        if (output_padding) spec.node["output_padding"] = size_node(*output_padding);  // None: none
        return trained_or_frozen(spec, trainable);
      },
      py::arg("filters"), py::arg("kernel_size"), py::arg("strides") = 1,
      py::arg("activation") = "linear", py::arg("padding") = "valid", py::arg("use_bias") = true,
      py::arg("trainable") = true, py::arg("output_padding") = py::none());
  m.def(
      "Conv1DTranspose",
      [](int64_t filters, int64_t kernel_size, int64_t strides, const std::string& activation,
         const std::string& padding, bool use_bias, bool trainable) {
        return trained_or_frozen(
            keras::Conv1DTranspose(filters, kernel_size, strides, activation, padding, use_bias),
            trainable);
      },
      py::arg("filters"), py::arg("kernel_size"), py::arg("strides") = 1,
      py::arg("activation") = "linear", py::arg("padding") = "valid", py::arg("use_bias") = true,
      py::arg("trainable") = true);
  m.def("MaxPooling2D", &keras::MaxPooling2D, py::arg("pool_size") = 2);
  m.def("AveragePooling2D", &keras::AveragePooling2D, py::arg("pool_size") = 2);
  for (const auto& [name, make] : {std::pair{"MaxPooling1D", &keras::MaxPooling1D},
                                   std::pair{"AveragePooling1D", &keras::AveragePooling1D}})
    m.def(
        name,
        [make](int64_t pool_size, std::optional<int64_t> strides, const std::string& padding) {
          return make(pool_size, strides.value_or(0), padding);
        },
        py::arg("pool_size") = 2, py::arg("strides") = py::none(), py::arg("padding") = "valid");
  m.def(
      "UpSampling2D",
      [](std::variant<int64_t, std::array<int64_t, 2>> size, const std::string& interpolation) {
        // "nearest" or "bilinear", or a ConfigError naming the key
        return keras::UpSampling2D(
            std::holds_alternative<int64_t>(size)
                ? std::array{std::get<int64_t>(size), std::get<int64_t>(size)}
                : std::get<std::array<int64_t, 2>>(size),
            interpolation);
      },
      py::arg("size") = 2, py::arg("interpolation") = "nearest");
  m.def("UpSampling1D", &keras::UpSampling1D, py::arg("size") = 2);
  // Keras' padding: one integer, (rows, columns) or ((top, bottom), (left, right)).
  using Padding =
      std::variant<int64_t, std::array<int64_t, 2>, std::array<std::array<int64_t, 2>, 2>>;
  m.def(
      "ZeroPadding2D",
      [](const Padding& padding) {
        if (const auto* n = std::get_if<int64_t>(&padding))
          return keras::ZeroPadding2D({{{*n, *n}, {*n, *n}}});
        if (const auto* rc = std::get_if<std::array<int64_t, 2>>(&padding))
          return keras::ZeroPadding2D({{{(*rc)[0], (*rc)[0]}, {(*rc)[1], (*rc)[1]}}});
        return keras::ZeroPadding2D(std::get<std::array<std::array<int64_t, 2>, 2>>(padding));
      },
      py::arg("padding") = 1);
  m.def(
      "ZeroPadding1D",
      [](std::variant<int64_t, std::array<int64_t, 2>> padding) {
        if (const auto* n = std::get_if<int64_t>(&padding)) return keras::ZeroPadding1D({*n, *n});
        return keras::ZeroPadding1D(std::get<std::array<int64_t, 2>>(padding));
      },
      py::arg("padding") = 1);
  m.def("GlobalAveragePooling2D", &keras::GlobalAveragePooling2D);
  m.def("GlobalAveragePooling1D", &keras::GlobalAveragePooling1D);
  m.def("GlobalMaxPooling2D", &keras::GlobalMaxPooling2D);
  m.def("GlobalMaxPooling1D", &keras::GlobalMaxPooling1D);
  m.def(
      "Embedding",
      [](int64_t input_dim, int64_t output_dim, bool mask_zero, bool trainable) {
        return trained_or_frozen(keras::Embedding(input_dim, output_dim, mask_zero), trainable);
      },
      py::arg("input_dim"), py::arg("output_dim"), py::arg("mask_zero") = false,
      py::arg("trainable") = true);
  for (const auto& [name, make] : {std::pair{"LSTM", &keras::LSTM}, std::pair{"GRU", &keras::GRU}})
    m.def(
        name,
        [make](int64_t units, bool return_sequences, bool use_bias, double dropout,
               double recurrent_dropout, bool trainable) {
          return trained_or_frozen(
              make(units, return_sequences, use_bias, dropout, recurrent_dropout), trainable);
        },
        py::arg("units"), py::arg("return_sequences") = false, py::arg("use_bias") = true,
        py::arg("dropout") = 0.0, py::arg("recurrent_dropout") = 0.0, py::arg("trainable") = true);
  m.def(
      "SimpleRNN",
      [](int64_t units, const std::string& activation, bool return_sequences, bool use_bias,
         double dropout, double recurrent_dropout, bool trainable) {
        return trained_or_frozen(keras::SimpleRNN(units, activation, return_sequences, use_bias,
                                                  dropout, recurrent_dropout),
                                 trainable);
      },
      py::arg("units"), py::arg("activation") = "tanh", py::arg("return_sequences") = false,
      py::arg("use_bias") = true, py::arg("dropout") = 0.0, py::arg("recurrent_dropout") = 0.0,
      py::arg("trainable") = true);
  m.def(
      "TransformerEncoder",
      [](int64_t intermediate_dim, int64_t num_heads, double dropout, const std::string& activation,
         double layer_norm_epsilon, bool normalize_first, bool causal, bool trainable) {
        return trained_or_frozen(
            keras::TransformerEncoder(intermediate_dim, num_heads, dropout, activation,
                                      layer_norm_epsilon, normalize_first, causal),
            trainable);
      },
      py::arg("intermediate_dim"), py::arg("num_heads"), py::arg("dropout") = 0.0,
      py::arg("activation") = "relu", py::arg("layer_norm_epsilon") = 1e-5,
      py::arg("normalize_first") = false, py::arg("causal") = false, py::arg("trainable") = true);
  m.def(
      "PositionEmbedding",
      [](bool trainable) { return trained_or_frozen(keras::PositionEmbedding(), trainable); },
      py::arg("trainable") = true);
  m.def("Bidirectional", &keras::Bidirectional, py::arg("layer"));
  m.def("TimeDistributed", &keras::TimeDistributed, py::arg("layer"));
  m.def(
      "Residual",
      [](const py::iterable& layers, const py::iterable& shortcut, bool trainable) {
        return trained_or_frozen(
            keras::Residual(block_layers(layers, "layers"), block_layers(shortcut, "shortcut")),
            trainable);
      },
      py::arg("layers"), py::arg("shortcut") = py::list(), py::arg("trainable") = true);
  m.def("Flatten", &keras::Flatten);
  m.def("Reshape", &keras::Reshape, py::arg("target_shape"));
  m.def("Rescaling", &keras::Rescaling, py::arg("scale"), py::arg("offset") = 0.0);
  m.def("Masking", &keras::Masking, py::arg("mask_value") = 0.0);
  m.def("Dropout", &keras::Dropout, py::arg("rate"));
  m.def("SpatialDropout1D", &keras::SpatialDropout1D, py::arg("rate"));
  m.def("SpatialDropout2D", &keras::SpatialDropout2D, py::arg("rate"));
  m.def(
      "BatchNormalization",
      [](bool sync, bool trainable) {
        return trained_or_frozen(keras::BatchNormalization(sync), trainable);
      },
      py::arg("sync") = false, py::arg("trainable") = true);
  m.def(
      "LayerNormalization",
      [](double epsilon, bool trainable) {
        return trained_or_frozen(keras::LayerNormalization(epsilon), trainable);
      },
      py::arg("epsilon") = 0.001, py::arg("trainable") = true);
  m.def(
      "RMSNormalization",
      [](double epsilon, bool trainable) {
        return trained_or_frozen(keras::RMSNormalization(epsilon), trainable);
      },
      py::arg("epsilon") = 1e-6, py::arg("trainable") = true);
  m.def("Activation", &keras::Activation, py::arg("activation"));
  m.def("LeakyReLU", &keras::LeakyReLU, py::arg("negative_slope") = 0.3);
  define_random_layers(m);
}

void define_layer_methods(py::class_<keras::Sequential>& sequential) {
  sequential
      .def(py::init([](const py::iterable& layers, std::vector<int64_t> input_shape) {
             ModelArguments given = model_arguments(layers, std::move(input_shape));
             return keras::Sequential(std::move(given.layers), std::move(given.input_shape));
           }),
           py::arg("layers") = py::list(), py::arg("input_shape") = std::vector<int64_t>{})
      .def(
          "add",
          [](keras::Sequential& self, const py::object& layer) {
            ModelArguments given = model_arguments(py::make_tuple(layer), {});
            for (const keras::Spec& spec : given.layers) self.add(spec);
            if (!given.input_shape.empty()) self.set_input_shape(given.input_shape);
          },
          py::arg("layer"), "Keras' add: a layer (or keras.Input) after the others")
      .def("pop", &keras::Sequential::pop, "Keras' pop: the last layer removed")
      // model.layers[i].trainable (keras_methods.cpp; Note [frozen layers]): model.layers lists
      // the layers in Keras' order, a residual block's among them (Note [Keras functional
      // models]), which freeze with their block.
      .def("_layer_trainable",
           [](const keras::Sequential& self, size_t index) {
             const std::vector<keras::KerasLayerRef> layers = self.keras_layers();
             return self.trainable(index < layers.size() ? layers[index].top : index);
           })
      .def("_set_layer_trainable", [](keras::Sequential& self, size_t index, bool trainable) {
        const std::vector<keras::KerasLayerRef> layers = self.keras_layers();
        if (index < layers.size() && layers[index].inner)
          throw ConfigError("Sequential: layers[" + std::to_string(index) +
                            "].trainable: a residual block's layer or Add, frozen with the block " +
                            "alone (ddp.Residual(..., trainable=False))");
        self.set_trainable(index < layers.size() ? layers[index].top : index, trainable);
      });
}

}  // namespace ddp::python
