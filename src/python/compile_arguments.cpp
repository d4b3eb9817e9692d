#include "compile_arguments.h"

#include <pybind11/stl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <string>

#include "api/keras_model_config.h"
#include "core/error.h"

namespace ddp::python {
namespace {

constexpr const char* kWhere = "Sequential: compile";

keras::Spec optimizer_named(std::string name) {
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name == "adam") return keras::Adam();
  if (name == "adamw") return keras::AdamW();
  if (name == "rmsprop") return keras::RMSprop();
  if (name == "sgd") return keras::SGD();
  throw ConfigError(std::string(kWhere) + ": optimizer '" + name +
                    "' is not one the trainer has (adam, adamw, rmsprop, sgd)");
}

// Keras' object (an optimizer, a loss or a metric: `what`) read by `read` from its class and
// settings as a .keras file describes one ({"class_name", "config"}). The settings go through
// json.dumps (NumPy scalars as floats), then nlohmann::json.
template <class Read>
auto of_keras_object(const py::object& object, const char* what, const Read& read) {
  const py::object dumps = py::module_::import("json").attr("dumps");
  const py::object as_float = py::module_::import("builtins").attr("float");
  const std::string class_name = py::type::of(object).attr("__name__").cast<std::string>();
  const std::string where = std::string(kWhere) + ": the " + what + " " + class_name;
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

}  // namespace

void add_optimizers_and_losses(py::module_& m) {
  m.def("Adam", &keras::Adam, py::arg("learning_rate") = 0.001, py::arg("beta_1") = 0.9,
        py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-7, "Keras 3's Adam: its rule");
  m.def("AdamW", &keras::AdamW, py::arg("learning_rate") = 0.001, py::arg("weight_decay") = 0.004,
        py::arg("beta_1") = 0.9, py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-7,
        "Keras 3's AdamW: its rule");
  m.def("SGD", &keras::SGD, py::arg("learning_rate") = 0.01, py::arg("momentum") = 0.0,
        py::arg("nesterov") = false, py::arg("weight_decay") = 0.0, "Keras 3's SGD: its rule");
  m.def("RMSprop", &keras::RMSprop, py::arg("learning_rate") = 0.001, py::arg("rho") = 0.9,
        py::arg("momentum") = 0.0, py::arg("epsilon") = 1e-7, py::arg("centered") = false,
        py::arg("weight_decay") = 0.0, "Keras 3's RMSprop: its rule and defaults");
  m.def(
      "CategoricalCrossentropy",
      [](bool from_logits, double label_smoothing) {
        return keras::CategoricalCrossentropy(label_smoothing, from_logits);
      },
      py::arg("from_logits") = false, py::arg("label_smoothing") = 0.0,
      "Keras' CategoricalCrossentropy: from_logits for a model without a final softmax");
  m.def("SparseCategoricalCrossentropy", &keras::SparseCategoricalCrossentropy,
        py::arg("from_logits") = false,
        "Keras' SparseCategoricalCrossentropy: from_logits for a model without a final softmax");
}

keras::Spec optimizer_of(const py::object& optimizer) {
  if (py::isinstance<py::str>(optimizer)) return optimizer_named(optimizer.cast<std::string>());
  if (py::isinstance<keras::Spec>(optimizer)) return optimizer.cast<keras::Spec>();
  if (py::hasattr(optimizer, "get_config"))
    return of_keras_object(optimizer, "optimizer", [](const nlohmann::json& j) {
      return keras::keras_optimizer(j, kWhere);
    });
  throw ConfigError(std::string(kWhere) +
                    ": optimizer: a name, ddp_trainer's or Keras' object, "
                    "not " +
                    py::repr(optimizer).cast<std::string>());
}

keras::Spec loss_of(const py::object& loss) {
  if (py::isinstance<py::str>(loss)) return {YAML::Node(loss.cast<std::string>())};
  if (py::isinstance<keras::Spec>(loss)) return loss.cast<keras::Spec>();
  if (py::hasattr(loss, "get_config"))
    return of_keras_object(loss, "loss",
                           [](const nlohmann::json& j) { return keras::keras_loss(j, kWhere); });
  throw ConfigError(std::string(kWhere) + ": loss: a name, ddp_trainer's or Keras' object, not " +
                    py::repr(loss).cast<std::string>());
}

std::vector<std::string> metrics_of(const py::object& metrics) {
  std::vector<std::string> names;  // Keras' metrics=None: none
  if (metrics.is_none()) return names;
  if (py::isinstance<py::str>(metrics) || !py::isinstance<py::sequence>(metrics))
    throw ConfigError(std::string(kWhere) + ": metrics: a list, not " +
                      py::repr(metrics).cast<std::string>());
  for (const py::handle metric : metrics) {
    if (py::isinstance<py::str>(metric))
      names.push_back(metric.cast<std::string>());
    else if (py::hasattr(metric, "get_config"))
      names.push_back(
          of_keras_object(py::reinterpret_borrow<py::object>(metric), "metric",
                          [](const nlohmann::json& j) { return keras::keras_metric(j, kWhere); }));
    else
      throw ConfigError(std::string(kWhere) + ": metrics: a name or Keras' metric object, not " +
                        py::repr(metric).cast<std::string>());
  }
  return names;
}

}  // namespace ddp::python
