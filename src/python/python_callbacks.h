#pragma once
// Keras-style callbacks of the Python module (Note [Python API]): the library's (EarlyStopping,
// ReduceLROnPlateau) go to the config; any object with some of Keras' on_train_begin(logs),
// on_epoch_begin(epoch, logs), on_train_batch_begin(batch, logs), on_train_batch_end(batch,
// logs), on_epoch_end(epoch, logs) and on_train_end(logs) (or Keras 2's on_batch_begin and
// on_batch_end) has them called on every rank, epochs and batches 0-based, with its `model`
// attribute set to the model; model.stop_training = True on rank 0 stops the fit, as in Keras 3:
// set in on_epoch_end after that epoch, in any other hook after the batch in progress or about to
// start (Sequential::set_stop_training). on_train_end's logs are the last epoch's;
// on_train_batch_end's are the epoch's running loss and metrics over all ranks (the last batch's
// are the epoch's). The batch hooks cost a call into Python and a small all-reduce a step, so they
// are called only where a class other than Keras' own defines them: a keras.callbacks.Callback
// subclass inherits do-nothing batch hooks.

#include <pybind11/pybind11.h>

#include <vector>

#include "api/keras.h"

namespace ddp::python {

namespace py = pybind11;

// Keras' BackupAndRestore save_freq: "epoch" (0), or a number of steps.
int64_t save_freq_steps(const py::object& save_freq);

// Keras' logs of one epoch: the loss, the metrics, their val_ values, the learning rate.
py::dict logs_of(const EpochRecord& e);

// Sorts `callbacks` into options (the library's, Keras' own BackupAndRestore as the library's,
// and the hooks of the Python ones) and returns the Python callbacks, for fit() to call
// on_train_end. Python objects are held by the caller during the fit, so the
// C++ side keeps only handles (it may drop them without the GIL).
std::vector<py::handle> add_callbacks(keras::FitOptions& options, const py::object& model,
                                      const py::list& callbacks);

// Calls `hook`(logs) of each callback that has it.
void call_hook(const std::vector<py::handle>& callbacks, const char* hook, const py::dict& logs);

}  // namespace ddp::python
