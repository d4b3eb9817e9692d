#include "python_callbacks.h"

#include <algorithm>
#include <iterator>
#include <string>

#include "core/error.h"
#include "train/metric_set.h"

namespace ddp::python {
namespace {

const char* const kHooks[] = {"on_train_begin", "on_epoch_begin", "on_train_batch_begin",
                              "on_batch_begin", "on_batch_end",   "on_train_batch_end",
                              "on_epoch_end",   "on_train_end"};

// Whether `hook` of cb is the caller's: set on the object, or defined by the first class of its
// MRO that has it outside Keras (keras.callbacks.Callback's hooks do nothing, or call Keras 2's
// on_batch_* names).
bool defines(py::handle cb, const char* hook) {
  if (!py::hasattr(cb, hook)) return false;
  if (py::hasattr(cb, "__dict__") && cb.attr("__dict__").contains(hook)) return true;
  for (const py::handle cls : py::type::of(cb).attr("__mro__")) {
    if (!cls.attr("__dict__").contains(hook)) continue;
    const std::string module = py::str(cls.attr("__module__"));
    for (const char* keras : {"keras", "tf_keras", "tensorflow"})
      if (module == keras || module.rfind(std::string(keras) + ".", 0) == 0) return false;
    return true;
  }
  return true;  // from __getattr__
}

// Calls the batch hook of each callback that defines one: Keras 3's name, else Keras 2's.
void call_batch_hook(const std::vector<py::handle>& python, const char* hook, const char* old_name,
                     int64_t batch, const py::dict& logs) {
  for (const py::handle cb : python) {
    if (defines(cb, hook)) {
      cb.attr(hook)(batch, logs);
    } else if (defines(cb, old_name)) {
      cb.attr(old_name)(batch, logs);
    }
  }
}

// Whether cb is Keras' own callback of that class (keras.callbacks), whose work the library does
// itself: BackupAndRestore's by its checkpoints (Note [run checkpoints]; Keras' object saves
// Keras' models only), SwapEMAWeights' by optimizer.validate_average (Note [weight average]).
bool is_keras_callback(py::handle cb, const char* class_name) {
  const std::string module = py::str(py::type::of(cb).attr("__module__"));
  return py::type::of(cb).attr("__name__").cast<std::string>() == class_name &&
         module.rfind("keras", 0) == 0;
}

// Keras' monitoring callbacks (ModelCheckpoint's save_best_only, say) with mode "auto" work out
// whether their quantity improves up or down from Keras' compiled metric objects, which the
// module's model does not have; the direction of ddp-trainer's metric is set in their place
// (a loss falls; mae falls; the others rise), as Keras would have found it.
void choose_monitor_mode(py::handle cb) {
  if (!py::hasattr(cb, "_set_monitor_op") || !py::hasattr(cb, "mode") ||
      !py::hasattr(cb, "monitor") || !py::isinstance<py::str>(cb.attr("monitor")) ||
      py::str(cb.attr("mode")).cast<std::string>() != "auto")
    return;
  std::string quantity = cb.attr("monitor").cast<std::string>();
  if (quantity.rfind("val_", 0) == 0) quantity = quantity.substr(4);
  const std::vector<std::string>& known = metric_names();
  if (quantity == "loss")
    cb.attr("mode") = "min";
  else if (std::find(known.begin(), known.end(), quantity) != known.end())
    cb.attr("mode") = MetricSet::lower_is_better(quantity) ? "min" : "max";
}

}  // namespace

int64_t save_freq_steps(const py::object& save_freq) {
  if (py::isinstance<py::str>(save_freq) && save_freq.cast<std::string>() == "epoch") return 0;
  if (!py::isinstance<py::str>(save_freq) && !py::isinstance<py::bool_>(save_freq) &&
      py::isinstance<py::int_>(save_freq) && save_freq.cast<int64_t>() > 0)
    return save_freq.cast<int64_t>();
  throw ConfigError(
      "fit: callbacks: BackupAndRestore's save_freq must be 'epoch' or a number "
      "of steps > 0, not " +
      py::repr(save_freq).cast<std::string>());
}

py::dict logs_of(const EpochRecord& e) {
  py::dict logs;
  logs["loss"] = e.loss;
  for (const MetricValue& m : e.metrics) logs[py::str(m.name)] = m.value;
  if (e.val_loss) logs["val_loss"] = *e.val_loss;
  for (const MetricValue& m : e.val_metrics) logs[py::str("val_" + m.name)] = m.value;
  logs["learning_rate"] = e.learning_rate;
  return logs;
}

std::vector<py::handle> add_callbacks(keras::FitOptions& options, const py::object& model,
                                      const py::list& callbacks) {
  std::vector<py::handle> python;
  for (const py::handle cb : callbacks) {
    if (py::isinstance<keras::Spec>(cb)) {
      options.callbacks.push_back(cb.cast<keras::Spec>());
    } else if (is_keras_callback(cb, "SwapEMAWeights")) {
      if (cb.attr("swap_on_epoch").cast<bool>())
        throw ConfigError(
            "fit: callbacks: SwapEMAWeights(swap_on_epoch=True): the epoch-end callbacks see the "
            "weights here, not their average; the validation measures it with "
            "swap_on_epoch=False");
      options.callbacks.push_back(keras::SwapEMAWeights());
    } else if (is_keras_callback(cb, "BackupAndRestore")) {
      options.callbacks.push_back(keras::BackupAndRestore(
          py::str(cb.attr("backup_dir")).cast<std::string>(), save_freq_steps(cb.attr("save_freq")),
          cb.attr("delete_checkpoint").cast<bool>()));
    } else if (std::any_of(std::begin(kHooks), std::end(kHooks),
                           [&cb](const char* hook) { return py::hasattr(cb, hook); })) {
      if (py::hasattr(cb, "set_model"))
        cb.attr("set_model")(model);
      else
        cb.attr("model") = model;
      choose_monitor_mode(cb);
      python.push_back(cb);
    } else {
      throw ConfigError("fit: callbacks: " + py::repr(cb).cast<std::string>() +
                        " is not EarlyStopping, ReduceLROnPlateau, BackupAndRestore or an object "
                        "with on_epoch_end(epoch, logs) or another of Keras' callback methods");
    }
  }
  const auto with = [&python](const char* hook) {
    return std::any_of(python.begin(), python.end(),
                       [hook](py::handle cb) { return py::hasattr(cb, hook); });
  };
  const auto defined = [&python](const char* hook, const char* old_name) {
    return std::any_of(python.begin(), python.end(),
                       [&](py::handle cb) { return defines(cb, hook) || defines(cb, old_name); });
  };
  // model.stop_training is the Sequential's (set_stop_training), which the fit reads. Keras' fit
  // hands its callbacks the run's shape (set_params) before on_train_begin: Keras' ProgbarLogger
  // counts the steps by it.
  if (with("on_train_begin") || with("set_params"))
    options.on_train_begin = [python, model = model.ptr(), epochs = options.epochs,
                              verbose = options.verbose] {
      const py::gil_scoped_acquire gil;
      py::dict params;
      params["verbose"] = verbose ? 1 : 0;
      params["epochs"] = epochs;
      params["steps"] = py::handle(model).cast<keras::Sequential&>().steps_per_epoch();
      for (const py::handle cb : python)
        if (py::hasattr(cb, "set_params")) cb.attr("set_params")(params);
      call_hook(python, "on_train_begin", py::dict());
    };
  if (with("on_epoch_end"))
    options.on_epoch_end = [python](const EpochRecord& record) {
      const py::gil_scoped_acquire gil;
      const py::dict logs = logs_of(record);
      for (const py::handle cb : python)
        if (py::hasattr(cb, "on_epoch_end")) cb.attr("on_epoch_end")(record.epoch - 1, logs);
      return false;
    };
  if (with("on_epoch_begin"))
    options.on_epoch_begin = [python](int64_t epoch) {
      const py::gil_scoped_acquire gil;
      for (const py::handle cb : python)
        if (py::hasattr(cb, "on_epoch_begin")) cb.attr("on_epoch_begin")(epoch - 1, py::dict());
    };
  if (defined("on_train_batch_begin", "on_batch_begin"))
    options.on_batch_begin = [python](int64_t batch) {
      const py::gil_scoped_acquire gil;
      call_batch_hook(python, "on_train_batch_begin", "on_batch_begin", batch, py::dict());
    };
  if (defined("on_train_batch_end", "on_batch_end"))
    options.on_batch_end = [python](const BatchLogs& running) {
      const py::gil_scoped_acquire gil;
      py::dict logs;
      logs["loss"] = running.loss;
      for (const MetricValue& m : running.metrics) logs[py::str(m.name)] = m.value;
      call_batch_hook(python, "on_train_batch_end", "on_batch_end", running.batch, logs);
    };
  return python;
}

void call_hook(const std::vector<py::handle>& callbacks, const char* hook, const py::dict& logs) {
  for (const py::handle cb : callbacks)
    if (py::hasattr(cb, hook)) cb.attr(hook)(logs);
}

}  // namespace ddp::python
