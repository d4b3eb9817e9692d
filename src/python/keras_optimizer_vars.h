#pragma once
// Note [Keras optimizer state]: a .keras file keeps the compiled optimizer's variables beside
// the model's, in model.weights.h5's group optimizer/vars: datasets "0", "1", ... in the order of
// Keras' optimizer.variables: its iterations (int64), its learning rate (float32; none under a
// schedule), then its slots for each trained variable (model.trainable_variables: each layer's
// kernel and bias, gamma and beta, in the order of model.layers, Note [Keras functional models])
// in Keras' layouts. Adam and AdamW interleave theirs (each variable's momentum, then its
// velocity); RMSprop groups them (every variable's velocity, then the momentums, then the
// average gradients, as it has them); SGD keeps a momentum per variable where its momentum is
// not 0, the negative of ddp-trainer's velocity
// (Keras' holds -lr g + momentum m, ddp-trainer's lr g + momentum v). The file does not name them,
// so a reader knows them by the optimizer (compile_config) and checks each one's shape. save()
// writes them, and load_model reads them, for an optimizer Keras has trained by Keras' rule, so a
// model goes on training from its moments and step count (its schedule with it) in Keras after
// ddp-trainer, or in ddp-trainer after Keras.

#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <vector>

#include "api/keras.h"
#include "keras_weights_file.h"

namespace ddp::python {

// Adds optimizer/vars to `file` (an open h5py.File) for `slots` of the model whose layers are
// `model_layers`, the group named `keras_name` (as Keras names it: the optimizer's name). The
// caller holds the GIL.
void add_keras_optimizer_vars(const pybind11::object& file, const keras::OptimizerSlots& slots,
                              const std::string& keras_name, const KerasLayers& model_layers);

// A Keras weights file's optimizer variables, in the form of `like` (the compiled optimizer's:
// Sequential::optimizer_slots()), for a model whose layers are `model_layers`; nothing where the
// file has none or they are those of an optimizer not yet built (its iterations 0). Throws
// CheckpointError naming `path` and the variable at fault. Takes the GIL.
std::optional<keras::OptimizerSlots> read_keras_optimizer_vars(const std::string& path,
                                                               const std::string& bytes,
                                                               const keras::OptimizerSlots& like,
                                                               const KerasLayers& model_layers);

}  // namespace ddp::python
