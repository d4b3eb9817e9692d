#pragma once
// The Python module's model files (Note [Python API]): save_weights and load_weights (a
// safetensors file, or Keras' weights file for a path ending in .h5: Note [Keras weights
// files]), and Keras' save of the whole model as a .keras file (Note [Keras model files]).
//
// Note [Keras model files]: save("model.keras") writes Keras 3's archive: a zip of
// metadata.json, config.json (the model as Keras describes it: Note [Keras model config]) and
// model.weights.h5 (the Keras weights file), so that keras.models.load_model("model.keras")
// rebuilds the trained model and predicts with it; with config.json's compile_config and the
// optimizer's variables where Keras has the compiled optimizer (Note [Keras optimizer state]),
// otherwise uncompiled. Rank 0 writes it, in memory and then durably. ddp_trainer.load_model reads
// such a file back, Keras' own included, where each layer is one ddp-trainer has (Note [Keras
// model config]): rank 0 reads it, and every rank builds the model with its weights.

#include <pybind11/pybind11.h>

#include "api/keras.h"

namespace ddp::python {

// Defines save_weights, load_weights and save on `sequential`, and load_model (Keras') in
// `module`; `runtime` is the module's, and
// `built` builds a model not built yet where it can (Sequential::build).
void define_file_methods(pybind11::module_& module, pybind11::class_<keras::Sequential>& sequential,
                         keras::Runtime& (*runtime)(),
                         keras::Sequential& (*built)(keras::Sequential&));

}  // namespace ddp::python
