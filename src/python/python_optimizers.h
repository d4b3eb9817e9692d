#pragma once
// compile()'s optimizer in the Python module (Note [Python API]).

#include <pybind11/pybind11.h>

#include "api/keras.h"

namespace ddp::python {

namespace py = pybind11;

// The module's optimizers: ddp_trainer.Adam, AdamW, SGD and RMSprop, with Keras' argument names.
void add_optimizers(py::module_& m);

// What compile() takes as Keras does: an optimizer's Keras name ("adam", "rmsprop": Keras'
// defaults), one of the module's, or Keras' own object (keras.optimizers.RMSprop(...)), read
// through its get_config() as load_model reads a .keras file's (keras_optimizer). ConfigError
// "Sequential: compile: ..." for anything else.
keras::Spec optimizer_of(const py::object& optimizer);

}  // namespace ddp::python
