#include "model_arguments.h"

#include <pybind11/stl.h>

#include <string>
#include <utility>

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

}  // namespace

ModelArguments model_arguments(const py::iterable& layers, std::vector<int64_t> input_shape) {
  ModelArguments out;
  std::vector<int64_t> keras_input;  // as Keras' objects give it
  size_t k = 0;
  for (const py::handle item : layers) {
    const std::string where = "Sequential: layers[" + std::to_string(k++) + "]";
    if (py::isinstance<keras::Spec>(item)) {
      out.layers.push_back(item.cast<keras::Spec>());
    } else if (py::type::of(item).attr("__name__").cast<std::string>() == "KerasTensor") {
      keras_input = sample_shape(item.attr("shape"), where);  // keras.Input(shape=...)
    } else if (py::hasattr(item, "get_config")) {
      keras::KerasLayer layer = of_keras_object(
          py::reinterpret_borrow<py::object>(item), where,
          [&where](const nlohmann::json& j) { return keras::keras_layer(j, where); });
      if (layer.spec) out.layers.push_back(std::move(*layer.spec));
      if (!layer.input_shape.empty()) keras_input = std::move(layer.input_shape);
      // Keras 3 keeps a layer's input_shape= argument here, outside its config.
      if (py::hasattr(item, "_input_shape_arg") && !item.attr("_input_shape_arg").is_none())
        keras_input = sample_shape(
            py::make_tuple(py::none()) + py::tuple(item.attr("_input_shape_arg")), where);
    } else {
      throw ConfigError(where + ": a layer of ddp_trainer's or Keras', not " +
                        py::repr(item).cast<std::string>());
    }
  }
  if (!input_shape.empty() && !keras_input.empty() && input_shape != keras_input)
    throw ConfigError("Sequential: input_shape " + Shape(input_shape).str() +
                      ", and the Keras input's shape is " + Shape(keras_input).str());
  out.input_shape = input_shape.empty() ? std::move(keras_input) : std::move(input_shape);
  return out;
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
      // model.layers[i].trainable (keras_methods.cpp; Note [frozen layers]).
      .def("_layer_trainable", &keras::Sequential::trainable)
      .def("_set_layer_trainable", &keras::Sequential::set_trainable);
}

}  // namespace ddp::python
