#pragma once
// Sequential's layers as the Python module takes them (Note [Python API]): the module's own
// layers, Keras' layer objects (keras.layers.Dense(128, activation="relu"), read through their
// get_config() as load_model reads a .keras file's layers: Note [Keras model config]), and the
// model's input as Keras gives it: keras.Input(shape=...), an InputLayer, or the first layer's
// input_shape argument.

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "api/keras.h"

namespace ddp::python {

struct ModelArguments {
  std::vector<keras::Spec> layers;
  std::vector<int64_t> input_shape;
};

// Defines the module's layers (Dense, Conv2D, ...), those with parameters taking Keras'
// trainable=False (Note [frozen layers]).
void define_layers(pybind11::module_& m);

// Defines Sequential(layers=[], input_shape=[]) and Keras' add(layer) and pop(), each taking
// what model_arguments takes.
void define_layer_methods(pybind11::class_<keras::Sequential>& sequential);

// `input_shape`: Sequential's own argument (empty: not given). ConfigError "Sequential:
// layers[k]: ..." for what the module cannot train, or an input shape given twice differently.
ModelArguments model_arguments(const pybind11::iterable& layers, std::vector<int64_t> input_shape);

}  // namespace ddp::python
