#pragma once
// Note [Keras weights files]: save_weights and load_weights of the Python module take Keras 3's
// own weights file for a path ending in ".h5" (Keras names them ".weights.h5"), so a Keras model
// of the same layers loads what ddp-trainer trained (keras.Model.load_weights) and ddp-trainer
// what Keras trained, and keras.callbacks.ModelCheckpoint(save_weights_only=True) works as a
// callback. The file is HDF5, through h5py (which Keras needs and installs): a group
// layers/<name>/vars per layer with variables, <name> the snake case of the Keras class, with _1,
// _2, ... for its later layers (dense, dense_1, conv2d, batch_normalization), which is how Keras
// finds a layer's group whatever the layer is called; its variables are datasets "0", "1", ... in
// Keras' order and layouts: Dense's kernel (in, out) and bias, Conv2D's kernel (kernel_h,
// kernel_w, in, filters) and bias, BatchNormalization's gamma, beta, moving_mean and
// moving_variance. Layers without variables need no group: Keras loads nothing into them. Written
// in memory and then durably (as a safetensors file is); the layouts are PyTorch's in
// get_weights(), so each tensor is transposed on the way.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "api/keras.h"

namespace ddp::python {

// A model's layers in Keras' order (Sequential::keras_layers(), Note [Keras functional models]).
using KerasLayers = std::vector<keras::KerasLayerRef>;

// How ddp-trainer's layout of a variable becomes Keras': the axes in Keras' order (none: the same),
// and an axis (of ours) of three gate blocks whose first two Keras orders the other way, or -1 (a
// GRU's: PyTorch's r, z, n against Keras' z, r, h).
struct KerasLayout {
  std::vector<int> to_keras;
  int gate_axis = -1;
};

// One of the model's trained variables in Keras' order (model.trainable_variables): its
// get_weights() name and its layout in Keras'.
struct KerasTrainedVariable {
  std::string name;
  KerasLayout layout;
};
// Those of a model whose layers are `model_layers` and whose parameters are `params` (a bias
// left out is not there).
std::vector<KerasTrainedVariable> keras_trained_variables(const KerasLayers& model_layers,
                                                          const std::vector<NamedTensor>& params);
// A tensor in ddp-trainer's layout as a NumPy array in Keras'.
pybind11::array keras_array(const NamedTensor& tensor, const KerasLayout& layout);
// The reverse, of an array of any real kind, in Keras' layout: ddp-trainer's shape and values.
std::pair<Shape, std::vector<float>> from_keras_array(const pybind11::handle& array,
                                                      const KerasLayout& layout);

// Whether save_weights / load_weights of `path` mean a Keras weights file.
bool is_keras_weights_file(const std::string& path);

// Each layer's variables in Keras' order and layouts (empty for a layer without any), from
// `weights` in ddp-trainer's own layouts (get_weights_in_own_layout()), as NumPy arrays.
pybind11::list keras_layer_variables(const std::vector<NamedTensor>& weights,
                                     const KerasLayers& model_layers);

// `weights` (own layouts) with the variables of the layer at `index` of `model_layers` replaced
// by `variables`, given in Keras' order and layouts (layer.set_weights); throws ConfigError
// naming the layer where their number or dimensions are not the layer's.
std::vector<NamedTensor> with_keras_layer_variables(std::vector<NamedTensor> weights,
                                                    const KerasLayers& model_layers, size_t index,
                                                    const pybind11::list& variables);

// A Keras weights file's bytes, for `path` (named in errors; CheckpointError as below).
// `more` adds to the file (an open h5py.File) before it is closed.
std::string keras_weights_bytes(const std::string& path, const std::vector<NamedTensor>& weights,
                                const KerasLayers& model_layers,
                                const std::function<void(const pybind11::object&)>& more = {});

// A Keras weights file's `bytes` as an open h5py.File (CheckpointError naming `path` where they
// are not HDF5 or h5py is missing), with the in-memory file under it, which h5py does not keep
// alive. The caller holds the GIL.
struct OpenKerasWeights {
  pybind11::object memory;
  pybind11::object file;
};
OpenKerasWeights open_keras_weights(const std::string& path, const std::string& bytes);

// A Python exception as one line: its class and message.
std::string one_line(const pybind11::error_already_set& e);

// Writes `weights` (get_weights()'s names and layouts) of a model whose layers are `model_layers`;
// throws CheckpointError naming the file (no h5py, say) or RuntimeError (an unwritable path).
// Takes the GIL.
void write_keras_weights(const std::string& path, const std::vector<NamedTensor>& weights,
                         const KerasLayers& model_layers);

// Reads a Keras weights file into get_weights()'s names and layouts for a model whose layers are
// `model_layers`; throws CheckpointError naming the file and the group at fault. Takes the GIL.
std::vector<NamedTensor> read_keras_weights(const std::string& path,
                                            const KerasLayers& model_layers);
// The same, of a Keras weights file's `bytes` (`path` names them in errors).
std::vector<NamedTensor> keras_weights_from_bytes(const std::string& path, const std::string& bytes,
                                                  const KerasLayers& model_layers);

}  // namespace ddp::python
