#pragma once
// Keras' own objects given to the Python module, read as a .keras file describes them (Note
// [Keras model config]).

#include <pybind11/pybind11.h>
#include <nlohmann/json.hpp>

#include <string>

#include "core/error.h"

namespace ddp::python {

// Keras' object (a layer, an optimizer, a loss, a metric) read by `read` from its class and
// settings as a .keras file describes one ({"class_name", "config": get_config()}); errors of its
// get_config() name it after `what` ("Sequential: compile: the loss"). The settings go through
// json.dumps (NumPy scalars as floats), then nlohmann::json.
template <class Read>
auto of_keras_object(const pybind11::object& object, const std::string& what, const Read& read) {
  namespace py = pybind11;
  const py::object dumps = py::module_::import("json").attr("dumps");
  const py::object as_float = py::module_::import("builtins").attr("float");
  const std::string class_name = py::type::of(object).attr("__name__").cast<std::string>();
  const std::string where = what + " " + class_name;
  try {
    const py::object config = object.attr("get_config")();
    if (!py::isinstance<py::dict>(config))
      throw ConfigError(where + ": its get_config() is not a dict of settings");
    const auto settings = py::cast<std::string>(
        dumps(config, py::arg("default") = as_float, py::arg("allow_nan") = false));
    return read({{"class_name", class_name}, {"config", nlohmann::json::parse(settings)}});
  } catch (const py::error_already_set& e) {  // e.what() would add the traceback's lines
    throw ConfigError(where + ": its get_config() is not plain settings (" +
                      py::str(e.value()).cast<std::string>() + ")");
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(where + ": " + e.what());
  }
}

}  // namespace ddp::python
