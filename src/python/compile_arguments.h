#pragma once
// compile()'s optimizer and loss in the Python module (Note [Python API]), and the module's
// optimizer and loss objects.

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "api/keras.h"

namespace ddp::python {

namespace py = pybind11;

// The module's optimizers (ddp_trainer.Adam, AdamW, SGD and RMSprop) and losses with settings
// (CategoricalCrossentropy, SparseCategoricalCrossentropy), with Keras' arguments in Keras' order.
void add_optimizers_and_losses(py::module_& m);

// What compile() takes as Keras does: an optimizer's Keras name ("adam", "rmsprop": Keras'
// defaults), one of the module's, or Keras' own object (keras.optimizers.RMSprop(...)), read
// through its get_config() as load_model reads a .keras file's (keras_optimizer). ConfigError
// "Sequential: compile: ..." for anything else.
keras::Spec optimizer_of(const py::object& optimizer);

// The same of a loss: its Keras name, one of the module's, or Keras' own object
// (keras.losses.SparseCategoricalCrossentropy(from_logits=True)), read through its get_config().
keras::Spec loss_of(const py::object& loss);

// compile()'s metrics: None (none, as Keras), or a list of names and Keras' metric objects
// (keras.metrics.SparseCategoricalAccuracy(): keras_metric).
std::vector<std::string> metrics_of(const py::object& metrics);

}  // namespace ddp::python
