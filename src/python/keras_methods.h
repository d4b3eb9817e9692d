#pragma once
// The parts of the Python module written in Python (Note [Python API]): Keras' History, and
// Keras' one-batch methods, model(x) and model.layers on top of fit, evaluate and predict.

#include <pybind11/pybind11.h>

namespace ddp::python {

// Defines History in `module`, and the methods on its Sequential (defined before this call).
void define_keras_methods(pybind11::module_& module);

}  // namespace ddp::python
