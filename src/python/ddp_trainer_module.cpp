// Note [Python API]: the C++ API (Note [C++ API]) as the Python module `ddp_trainer`, with NumPy
// arrays for data, outputs and weights and Keras' names and defaults:
//
//   import ddp_trainer as ddp
//   model = ddp.Sequential([ddp.Dense(64, "relu"), ddp.Dense(10, "softmax")], input_shape=[10])
//   model.compile(ddp.Adam(0.001), "sparse_categorical_crossentropy", ["accuracy"])
//   history = model.fit(x, y, epochs=10, batch_size=32)  # {"loss": [...], "accuracy": [...]}
//
// Under mpirun every rank runs the script; the first call that needs it starts MPI (a world of
// one outside mpirun), which ends as the process exits, after the interpreter has freed the
// models (a static's destructor). An exception no rank catches aborts the whole job once Python
// has printed it, as mpi4py's -m mode does: the other ranks would otherwise wait in their next
// collective, and this one in MPI's finalization, for each other. Training releases the GIL.
// fit() copies the arrays once (float32 features, int32 labels) and moves that copy into the
// training set, so a fit holds the NumPy arrays plus one copy. A float y is a regression's
// targets. Callbacks may be Python objects with Keras' hooks (python_callbacks.h), Keras' own
// among them, which read and set model.optimizer.learning_rate (Note [rate set by a callback]);
// weights go to and from Keras' own files too (Note [Keras weights files]).
// The library's errors arrive as ddp_trainer.ConfigError, DataError, CheckpointError and
// TrainingError, with the same one-line messages.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/keras.h"
#include "compile_arguments.h"
#include "core/error.h"
#include "keras_methods.h"
#include "model_arguments.h"
#include "model_files.h"
#include "python_arrays.h"
#include "python_callbacks.h"

namespace py = pybind11;
namespace keras = ddp::keras;
using ddp::python::add_callbacks;
using ddp::python::add_optimizers_and_losses;
using ddp::python::array_of;
using ddp::python::arrays;
using ddp::python::call_hook;
using ddp::python::define_file_methods;
using ddp::python::define_keras_methods;
using ddp::python::define_layer_methods;
using ddp::python::define_layers;
using ddp::python::FloatArray;
using ddp::python::logs_of;
using ddp::python::loss_of;
using ddp::python::metrics_of;
using ddp::python::optimizer_of;
using ddp::python::save_freq_steps;

namespace {

keras::Runtime& runtime();

// sys.excepthook for several ranks: Python's own report, then the job's end.
void abort_the_job(const py::object& type, const py::object& value, const py::object& trace) {
  py::module_::import("sys").attr("__excepthook__")(type, value, trace);
  py::module_::import("sys").attr("stderr").attr("flush")();
  runtime().comm().abort(1);
}

// The process's runtime, started by the first call (called with the GIL held): MPI under mpirun,
// else a world of one.
keras::Runtime& runtime() {
  static int argc = 1;
  static char name[] = "python";
  static char* args[] = {name, nullptr};
  static char** argv = args;
  static const std::unique_ptr<keras::Runtime> started = [] {
    auto r = std::make_unique<keras::Runtime>(&argc, &argv);
    if (r->size() > 1)
      py::module_::import("sys").attr("excepthook") = py::cpp_function(&abort_the_job);
    return r;
  }();
  return *started;
}

// Keras' models with an input shape are built as they are made: the calls that need the model
// before any fit build it (Sequential::build).
keras::Sequential& built(keras::Sequential& model) {
  if (!model.built() && !model.input_shape().empty()) model.build(runtime());
  return model;
}

// What model.optimizer returns: a view of the model's optimizer, which keeps the model alive.
struct OptimizerOf {
  keras::Sequential* model;
};

// Keras' History object, as fit returns it and sets model.history: a dict of each quantity's
// values per epoch (history["loss"]) that is also its own .history (Keras'
// history.history["loss"]), with .epoch, the 0-based numbers of the epochs trained.
py::object history_of(const keras::History& history) {
  py::dict out;
  py::list epochs;
  for (const ddp::EpochRecord& e : history.epochs) {
    epochs.append(e.epoch - 1);
    for (const auto& [name, value] : logs_of(e)) {
      if (!out.contains(name)) out[name] = py::list();
      out[name].cast<py::list>().append(value);
    }
  }
  py::object made = py::module_::import("ddp_trainer").attr("History")(out);
  made.attr("epoch") = epochs;
  return made;
}

// Keras' verbose: 0 is silent, anything else ("auto", 1, 2) prints.
bool verbose_of(const py::object& verbose) {
  return py::isinstance<py::str>(verbose) || verbose.cast<int>() != 0;
}

// Keras' validation_freq: a number of epochs (returned), or a list of the 1-based epochs to
// validate (a config key added to `set`; 1 returned).
int64_t validation_every(const py::object& validation_freq, std::vector<std::string>& set) {
  const auto integer = [](py::handle v) {
    return py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v);
  };
  if (integer(validation_freq)) return validation_freq.cast<int64_t>();
  const bool listed =
      py::isinstance<py::list>(validation_freq) || py::isinstance<py::tuple>(validation_freq);
  std::string epochs;
  for (const py::handle e : listed ? validation_freq : py::tuple()) {
    if (!integer(e)) {
      epochs.clear();
      break;
    }
    epochs += (epochs.empty() ? "" : ", ") + std::to_string(e.cast<int64_t>());
  }
  if (epochs.empty())
    throw ddp::ConfigError(
        "fit: validation_freq: a number of epochs or a list of the epochs to validate, not " +
        py::repr(validation_freq).cast<std::string>());
  set.insert(set.begin(), "training.validation_freq=[" + epochs + "]");
  return 1;
}

// Keras' fit, its arguments in Keras' order (then the module's seed and set).
py::object fit(const py::object& model, const py::object& x, const std::optional<py::array>& y,
               int64_t batch_size, int64_t epochs, const py::object& verbose,
               const py::list& callbacks, double validation_split,
               const std::optional<py::tuple>& validation_data, bool shuffle,
               std::map<int64_t, double> class_weight,
               const std::optional<FloatArray>& sample_weight, int64_t initial_epoch,
               const py::object& steps_per_epoch, const py::object& validation_steps,
               const py::object&, const py::object& validation_freq, uint64_t seed,
               std::vector<std::string> set) {
  auto& self = model.cast<keras::Sequential&>();
  // Keras' steps_per_epoch and validation_steps cut passes over the data short, and with arrays
  // carry the rest of a pass into the next epoch; every epoch here is one whole pass.
  for (const auto& [name, value] : {std::pair{"steps_per_epoch", &steps_per_epoch},
                                    std::pair{"validation_steps", &validation_steps}})
    if (!value->is_none())
      throw ddp::ConfigError(std::string("fit: ") + name +
                             ": not supported; each epoch trains (and validates) one whole "
                             "pass over the data");
  if (!shuffle) set.insert(set.begin(), "training.shuffle=false");
  const int64_t every = validation_every(validation_freq, set);
  keras::FitOptions options{.epochs = epochs,
                            .batch_size = batch_size,
                            .seed = seed,
                            .verbose = verbose_of(verbose),
                            .validation_split = validation_split,
                            .validation_freq = every,
                            .class_weight = std::move(class_weight),
                            .initial_epoch = initial_epoch,
                            .set = std::move(set)};
  const std::vector<py::handle> python_callbacks = add_callbacks(options, model, callbacks);
  keras::Runtime& rt = runtime();
  keras::History history;
  if (py::isinstance<keras::Spec>(x)) {  // data the config names: idx, csv, synthetic
    if (sample_weight)
      throw ddp::DataError("fit: sample_weight goes with arrays x and y, not with data Specs");
    std::optional<keras::Spec> validation;
    if (validation_data) {
      if (validation_data->size() != 1 || !py::isinstance<keras::Spec>((*validation_data)[0]))
        throw ddp::DataError("fit: with data Specs, validation_data must be (spec,)");
      validation = (*validation_data)[0].cast<keras::Spec>();
    }
    const keras::Spec train = x.cast<keras::Spec>();
    py::gil_scoped_release released;
    history = self.fit(rt, train, options, validation);
  } else {
    if (!y) throw ddp::DataError("fit: arrays x need their labels y");
    keras::Arrays train = arrays(x.cast<FloatArray>(), y, "fit", sample_weight);
    std::optional<keras::Arrays> validation;
    if (validation_data) {
      const py::tuple& v = *validation_data;  // Keras': (x, y) or (x, y, sample_weight)
      if (v.size() != 2 && v.size() != 3)
        throw ddp::DataError("fit: validation_data must be (x, y) or (x, y, sample_weight)");
      validation = arrays(v[0].cast<FloatArray>(), v[1].cast<py::array>(), "fit: validation_data",
                          v.size() == 3 ? std::optional(v[2].cast<FloatArray>()) : std::nullopt);
    }
    py::gil_scoped_release released;
    history = self.fit(rt, std::move(train), options, std::move(validation));
  }
  call_hook(python_callbacks, "on_train_end",
            history.epochs.empty() ? py::dict() : logs_of(history.epochs.back()));
  py::object made = history_of(history);
  model.attr("history") = made;
  return made;
}

}  // namespace

PYBIND11_MODULE(ddp_trainer, m) {
  m.doc() = "ddp-trainer's Keras-like API: data-parallel training under mpirun (Note [Python API])";
  // Translators are tried last registered first: the base class goes first.
  py::register_exception<ddp::Error>(m, "TrainingError", PyExc_RuntimeError);
  py::register_exception<ddp::ConfigError>(m, "ConfigError", PyExc_ValueError);
  py::register_exception<ddp::DataError>(m, "DataError", PyExc_ValueError);
  py::register_exception<ddp::CheckpointError>(m, "CheckpointError", PyExc_OSError);

  py::class_<keras::Spec>(m, "Spec", "A layer, optimizer, loss, callback or data source")
      .def("__repr__", [](const keras::Spec& s) {
        YAML::Emitter out;
        out << YAML::Flow << s.node;
        return std::string("Spec(") + out.c_str() + ")";
      });

  define_layers(m);
  add_optimizers_and_losses(m);
  m.def("EarlyStopping", &keras::EarlyStopping, py::arg("monitor") = "val_loss",
        py::arg("patience") = 0, py::arg("min_delta") = 0.0,
        py::arg("restore_best_weights") = false, py::arg("mode") = "auto",
        py::arg("baseline") = std::nullopt, py::arg("start_from_epoch") = 0);
  m.def("ReduceLROnPlateau", &keras::ReduceLROnPlateau, py::arg("monitor") = "val_loss",
        py::arg("factor") = 0.1, py::arg("patience") = 10, py::arg("min_delta") = 1e-4,
        py::arg("cooldown") = 0, py::arg("min_lr") = 0.0, py::arg("mode") = "auto");
  m.def(
      "BackupAndRestore",
      [](const std::string& backup_dir, const py::object& save_freq, bool delete_checkpoint) {
        return keras::BackupAndRestore(backup_dir, save_freq_steps(save_freq), delete_checkpoint);
      },
      py::arg("backup_dir"), py::arg("save_freq") = "epoch", py::arg("delete_checkpoint") = true);
  m.def("synthetic", &keras::synthetic, py::arg("samples"), py::arg("features"),
        py::arg("classes"));
  m.def("idx", &keras::idx, py::arg("images"), py::arg("labels"), py::arg("normalize") = true);
  m.def("csv", &keras::csv, py::arg("path"), py::arg("header") = true);

  m.def(
      "rank", [] { return runtime().rank(); }, "This process's rank (starts MPI if needed)");
  m.def(
      "size", [] { return runtime().size(); }, "The number of ranks (starts MPI if needed)");

  // Keras' model.optimizer as its callbacks use it (LearningRateScheduler, ReduceLROnPlateau):
  // the learning rate, read and set (Note [rate set by a callback]), and the steps taken.
  py::class_<OptimizerOf>(m, "Optimizer", "The compiled optimizer of a Sequential")
      .def_property(
          "learning_rate", [](const OptimizerOf& o) { return o.model->learning_rate(); },
          [](const OptimizerOf& o, double rate) { o.model->set_learning_rate(rate); })
      .def_property_readonly(
          "iterations", [](const OptimizerOf& o) { return o.model->optimizer_iterations(); },
          "The steps it has taken (Keras' optimizer.iterations)");

  py::class_<keras::Sequential> sequential(m, "Sequential", py::dynamic_attr());  // history
  define_layer_methods(sequential);
  sequential
      .def(
          "compile",
          [](keras::Sequential& self, const py::object& optimizer, const py::object& loss,
             const py::object& given) {
            // Keras' metrics=None: none (the C++ API's nullopt is the loss's default ones).
            const std::vector<std::string> metrics = metrics_of(given);
            const keras::Spec chosen = optimizer_of(optimizer);
            if (loss.is_none())
              throw ddp::ConfigError(
                  "Sequential: compile: loss: required (Keras' loss=None trains the losses of "
                  "add_loss, which ddp-trainer's layers do not have)");
            self.compile(chosen, loss_of(loss), metrics);
          },
          py::arg("optimizer") = "rmsprop", py::arg("loss") = py::none(),
          py::arg("metrics") = py::none())
      .def_property("stop_training", &keras::Sequential::stop_training,
                    &keras::Sequential::set_stop_training,
                    "Keras' model.stop_training: True set by a callback on rank 0 ends the fit")
      .def_property_readonly(
          "optimizer", [](keras::Sequential& self) { return OptimizerOf{&self}; },
          py::keep_alive<0, 1>())
      .def("fit", &fit, py::arg("x"), py::arg("y") = std::nullopt, py::arg("batch_size") = 32,
           py::arg("epochs") = 1, py::arg("verbose") = "auto", py::arg("callbacks") = py::list(),
           py::arg("validation_split") = 0.0, py::arg("validation_data") = std::nullopt,
           py::arg("shuffle") = true, py::arg("class_weight") = std::map<int64_t, double>{},
           py::arg("sample_weight") = std::nullopt, py::arg("initial_epoch") = 0,
           py::arg("steps_per_epoch") = py::none(), py::arg("validation_steps") = py::none(),
           py::arg("validation_batch_size") = py::none(), py::arg("validation_freq") = 1,
           py::kw_only(), py::arg("seed") = 0, py::arg("set") = std::vector<std::string>{})
      // Keras' batch_size and verbose are taken: the outputs do not depend on the batch (the
      // config's eval_batch_size per rank), and nothing is printed.
      .def(
          "predict",
          [](keras::Sequential& self, const FloatArray& x, const py::object&, const py::object&) {
            const std::vector<float> out = built(self).predict(arrays(x, std::nullopt, "predict"));
            std::vector<py::ssize_t> shape = {static_cast<py::ssize_t>(x.shape(0))};
            for (const int64_t d : self.output_shape()) shape.push_back(d);  // (rows, steps, ...)
            return array_of(out, shape);
          },
          py::arg("x"), py::arg("batch_size") = py::none(), py::arg("verbose") = "auto")
      .def(
          "evaluate",
          [](keras::Sequential& self, const FloatArray& x, const py::array& y, const py::object&,
             const py::object&, const std::optional<FloatArray>& sample_weight,
             bool return_dict) -> py::object {
            std::vector<ddp::MetricValue> values;
            {
              keras::Arrays data = arrays(x, y, "evaluate", sample_weight);
              built(self);
              py::gil_scoped_release released;
              values = self.evaluate(std::move(data));
            }
            // Keras': the loss alone, or [loss, metrics...] in compile's order, or the dict.
            if (!return_dict && values.size() == 1) return py::float_(values[0].value);
            py::dict named;
            py::list listed;
            for (const ddp::MetricValue& v : values) {
              named[py::str(v.name)] = v.value;
              listed.append(v.value);
            }
            return return_dict ? py::object(named) : py::object(listed);
          },
          py::arg("x"), py::arg("y"), py::arg("batch_size") = py::none(),
          py::arg("verbose") = "auto", py::arg("sample_weight") = std::nullopt,
          py::arg("return_dict") = false)
      .def(
          "build", [](keras::Sequential& self) { self.build(runtime()); },
          "Keras' build(): the model and its weights, before any fit (needs the input shape)")
      .def_property_readonly("built", &keras::Sequential::built)
      .def_property_readonly("input_shape",
                             [](const keras::Sequential& self) {
                               py::list shape;  // Keras': (None, ...)
                               shape.append(py::none());
                               for (const int64_t d : self.input_shape()) shape.append(d);
                               return py::tuple(shape);
                             })
      .def("count_params", &keras::Sequential::count_params,
           "Keras' count_params(): the trained parameters and the running statistics")
      .def(
          "summary",
          [](const keras::Sequential& self) {
            const std::string table = self.summary();
            if (runtime().rank() == 0) py::print(table);  // once, as fit's epoch lines
          },
          "Prints Keras' summary table (layers, output shapes, parameter counts) on rank 0")
      .def("get_weights",
           [](keras::Sequential& self) {
             py::dict out;  // in order: the parameters, then the running statistics
             for (const ddp::NamedTensor& t : built(self).get_weights()) {
               std::vector<py::ssize_t> shape(t.shape.dims().begin(), t.shape.dims().end());
               out[py::str(t.name)] = array_of(t.values, shape);
             }
             return out;
           })
      .def(
          "set_weights",
          [](keras::Sequential& self, const py::dict& weights) {
            std::vector<ddp::NamedTensor> tensors;
            for (const auto& [name, value] : weights) {
              const auto a = value.cast<FloatArray>();
              tensors.push_back({name.cast<std::string>(),
                                 ddp::Shape(std::vector<int64_t>(a.shape(), a.shape() + a.ndim())),
                                 std::vector<float>(a.data(), a.data() + a.size())});
            }
            self.set_weights(std::move(tensors));
          },
          py::arg("weights"));
  define_file_methods(m, sequential, runtime, built);
  define_keras_methods(m);
}
