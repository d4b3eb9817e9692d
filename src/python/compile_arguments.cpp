#include "compile_arguments.h"

#include <pybind11/stl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "keras_objects.h"

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
  if (name == "adagrad") return keras::Adagrad();
  if (name == "adamax") return keras::Adamax();
  if (name == "nadam") return keras::Nadam();
  if (name == "lion") return keras::Lion();
  throw ConfigError(std::string(kWhere) + ": optimizer '" + name +
                    "' is not one the trainer has (adam, adamw, rmsprop, sgd, adagrad, adamax, "
                    "nadam, lion)");
}

// An optimizer's constructor with Keras' own arguments (`names`, its settings' defaults) and then
// the weight average's that every Keras optimizer takes (Note [weight average]): use_ema,
// ema_momentum (ignored without it, as Keras ignores it) and ema_overwrite_frequency (None: at
// the end of fit only).
template <class... Args, class... Names>
void def_optimizer(py::module_& m, const char* name, keras::Spec (*make)(Args...), const char* doc,
                   Names... names) {
  m.def(
      name,
      [make](Args... args, bool use_ema, double ema_momentum, std::optional<int64_t> every) {
        const keras::Spec spec = make(args...);
        return use_ema ? keras::with_weight_average(spec, ema_momentum, every.value_or(0)) : spec;
      },
      names..., py::arg("use_ema") = false, py::arg("ema_momentum") = 0.99,
      py::arg("ema_overwrite_frequency") = py::none(), doc);
}

}  // namespace

void add_optimizers_and_losses(py::module_& m) {
  def_optimizer(m, "Adam", &keras::Adam, "Keras 3's Adam: its rule",
                py::arg("learning_rate") = 0.001, py::arg("beta_1") = 0.9,
                py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-7);
  def_optimizer(m, "AdamW", &keras::AdamW, "Keras 3's AdamW: its rule",
                py::arg("learning_rate") = 0.001, py::arg("weight_decay") = 0.004,
                py::arg("beta_1") = 0.9, py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-7);
  def_optimizer(m, "SGD", &keras::SGD, "Keras 3's SGD: its rule", py::arg("learning_rate") = 0.01,
                py::arg("momentum") = 0.0, py::arg("nesterov") = false,
                py::arg("weight_decay") = 0.0);
  def_optimizer(m, "RMSprop", &keras::RMSprop, "Keras 3's RMSprop: its rule and defaults",
                py::arg("learning_rate") = 0.001, py::arg("rho") = 0.9, py::arg("momentum") = 0.0,
                py::arg("epsilon") = 1e-7, py::arg("centered") = false,
                py::arg("weight_decay") = 0.0);
  def_optimizer(m, "Adagrad", &keras::Adagrad, "Keras 3's Adagrad: its rule and defaults",
                py::arg("learning_rate") = 0.001, py::arg("initial_accumulator_value") = 0.1,
                py::arg("epsilon") = 1e-7, py::arg("weight_decay") = 0.0);
  def_optimizer(m, "Adamax", &keras::Adamax, "Keras 3's Adamax: its rule and defaults",
                py::arg("learning_rate") = 0.001, py::arg("beta_1") = 0.9,
                py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-7,
                py::arg("weight_decay") = 0.0);
  def_optimizer(m, "Nadam", &keras::Nadam,
                "Keras 3's Nadam: its rule (momentum schedule 0.96^t) and defaults",
                py::arg("learning_rate") = 0.001, py::arg("beta_1") = 0.9,
                py::arg("beta_2") = 0.999, py::arg("epsilon") = 1e-7,
                py::arg("weight_decay") = 0.0);
  def_optimizer(m, "Lion", &keras::Lion, "Keras 3's Lion (Chen et al. 2023): its rule and defaults",
                py::arg("learning_rate") = 0.001, py::arg("beta_1") = 0.9, py::arg("beta_2") = 0.99,
                py::arg("weight_decay") = 0.0);
  m.def(
      "CategoricalCrossentropy",
      [](bool from_logits, double label_smoothing) {
        return keras::CategoricalCrossentropy(label_smoothing, from_logits);
      },
      py::arg("from_logits") = false, py::arg("label_smoothing") = 0.0,
      "Keras' CategoricalCrossentropy: from_logits for a model without a final softmax");
  m.def("SparseCategoricalCrossentropy", &keras::SparseCategoricalCrossentropy,
        py::arg("from_logits") = false, py::arg("ignore_class") = py::none(),
        "Keras' SparseCategoricalCrossentropy: from_logits for a model without a final softmax; "
        "ignore_class: labels of that class count nowhere (PyTorch's ignore_index)");
}

keras::Spec optimizer_of(const py::object& optimizer) {
  if (py::isinstance<py::str>(optimizer)) return optimizer_named(optimizer.cast<std::string>());
  if (py::isinstance<keras::Spec>(optimizer)) return optimizer.cast<keras::Spec>();
  if (py::hasattr(optimizer, "get_config"))
    return of_keras_object(
        optimizer, std::string(kWhere) + ": the optimizer",
        [](const nlohmann::json& j) { return keras::keras_optimizer(j, kWhere); });
  throw ConfigError(std::string(kWhere) +
                    ": optimizer: a name, ddp_trainer's or Keras' object, "
                    "not " +
                    py::repr(optimizer).cast<std::string>());
}

keras::Spec loss_of(const py::object& loss) {
  if (py::isinstance<py::str>(loss)) return {YAML::Node(loss.cast<std::string>())};
  if (py::isinstance<keras::Spec>(loss)) return loss.cast<keras::Spec>();
  if (py::hasattr(loss, "get_config"))
    return of_keras_object(loss, std::string(kWhere) + ": the loss",
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
