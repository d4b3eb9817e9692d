#include "model_files.h"

#include <pybind11/stl.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "api/keras_model_config.h"
#include "comm/agreement.h"
#include "core/durable_write.h"
#include "core/error.h"
#include "core/input_file.h"
#include "keras_optimizer_vars.h"
#include "keras_variables.h"
#include "keras_weights_file.h"

namespace ddp::python {
namespace {

namespace py = pybind11;

// Keras' overwrite=False asks before replacing a file; a job cannot ask, so it refuses.
void refuse_to_replace(keras::Runtime& rt, const std::string& path, const char* call) {
  run_agreed(rt.comm(), [&] {
    if (rt.rank() == 0 && std::filesystem::exists(path))
      throw CheckpointError(path + ": exists, and " + call +
                            "(overwrite=False) does not replace it");
  });
}

// Note [Keras model files]: the archive's bytes, built with Python's zipfile (stored, as Keras
// stores them).
// With `slots`, the optimizer's variables (Note [Keras optimizer state]) go with the weights,
// in a group named `optimizer_name`.
void write_keras_model(const std::string& path, const std::vector<NamedTensor>& weights,
                       const KerasLayers& model_layers, const std::string& config,
                       const std::optional<keras::OptimizerSlots>& slots,
                       const std::string& optimizer_name) {
  const std::string h5 =
      keras_weights_bytes(path, weights, model_layers, [&](const py::object& file) {
        if (slots) add_keras_optimizer_vars(file, *slots, optimizer_name, model_layers);
      });
  const py::gil_scoped_acquire gil;
  std::string bytes;
  try {
    const py::module_ zipfile = py::module_::import("zipfile");
    const py::object memory = py::module_::import("io").attr("BytesIO")();
    const py::object archive = zipfile.attr("ZipFile")(memory, "w");
    const std::string saved = py::module_::import("datetime")
                                  .attr("datetime")
                                  .attr("now")()
                                  .attr("strftime")("%Y-%m-%d@%H:%M:%S")
                                  .cast<std::string>();
    archive.attr("writestr")("metadata.json", "{\"keras_version\": \"3\", \"date_saved\": \"" +
                                                  saved + "\", \"saved_by\": \"ddp-trainer\"}");
    archive.attr("writestr")("config.json", config);
    archive.attr("writestr")("model.weights.h5", py::bytes(h5));
    archive.attr("close")();
    bytes = memory.attr("getvalue")().cast<std::string>();
  } catch (const py::error_already_set& e) {
    throw CheckpointError(path + ": writing the Keras model file: " + one_line(e));
  }
  write_file_durably(path, std::as_bytes(std::span(bytes.data(), bytes.size())));
}

// A Keras model file's config.json and model.weights.h5, read once, on this rank.
struct KerasArchive {
  std::string config;
  std::string weights;
};
KerasArchive read_keras_archive(const std::string& path) {
  const py::gil_scoped_acquire gil;
  const std::vector<std::byte> raw = read_whole_file<CheckpointError>(path);
  KerasArchive out;
  const char* member = "config.json";
  try {
    const py::object archive =
        py::module_::import("zipfile").attr("ZipFile")(py::module_::import("io").attr("BytesIO")(
            py::bytes(reinterpret_cast<const char*>(raw.data()), raw.size())));
    out.config = archive.attr("read")(member).cast<std::string>();
    member = "model.weights.h5";
    out.weights = archive.attr("read")(member).cast<std::string>();
  } catch (const py::error_already_set& e) {
    throw CheckpointError(path + ": not a Keras model file (a zip with " + member +
                          "): " + one_line(e));
  }
  return out;
}

// Note [Keras model files], back: the model of a .keras file, its weights loaded, compiled as its
// compile_config says where it has one (and `compile`). Rank 0 reads the file.
keras::Sequential load_model(keras::Runtime& rt, const std::string& path, bool compile) {
  KerasArchive file;  // rank 0's; the others get the config
  run_agreed(rt.comm(), [&] {
    if (rt.rank() == 0) file = read_keras_archive(path);
  });
  std::string& config = file.config;
  uint64_t size = config.size();
  rt.comm().broadcast(std::span<uint64_t>(&size, 1), 0);
  config.resize(size);
  rt.comm().broadcast(std::span<char>(config.data(), config.size()), 0);
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(config);
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(path + ": config.json: " + e.what());
  }
  keras::KerasModel described = keras::keras_model_from_config(parsed, path, compile);
  keras::Sequential model(std::move(described.layers), std::move(described.input_shape));
  if (described.optimizer)
    model.compile(*described.optimizer, *described.loss, std::move(described.metrics));
  const std::string weights_file = path + ": model.weights.h5";
  const KerasLayers types = std::move(described.keras_layers);
  // Shared with the reader, which runs at the first fit where the model is not built here.
  const auto weights = std::make_shared<const std::string>(std::move(file.weights));
  model.load_weights(path, [types, weights_file, weights](const std::string&) {
    return keras_weights_from_bytes(weights_file, *weights, types);
  });
  try {
    if (!model.input_shape().empty()) model.build(rt);  // the weights in place now, or at the fit
  } catch (const ConfigError& e) {                      // about the model the file describes
    throw ConfigError(path + ": " + e.what());
  }
  // Note [Keras optimizer state]: where the model is built (Keras' always is once trained).
  if (described.optimizer && model.built())
    model.load_optimizer_slots(
        [&](const keras::OptimizerSlots& like) {
          return read_keras_optimizer_vars(weights_file, *weights, like, types);
        },
        weights_file);
  return model;
}

}  // namespace

void define_file_methods(py::module_& module, py::class_<keras::Sequential>& sequential,
                         keras::Runtime& (*runtime)(),
                         keras::Sequential& (*built)(keras::Sequential&)) {
  module.def(
      "load_model",
      [runtime](const std::string& filepath, bool compile) {
        return load_model(runtime(), filepath, compile);
      },
      py::arg("filepath"), py::arg("compile") = true,
      "Keras' load_model of a .keras file (Note [Keras model files]): the model, its weights, and "
      "its optimizer, loss and metrics where it was compiled with ones ddp-trainer has");
  sequential
      .def(
          "save_weights",
          [runtime, built](keras::Sequential& self, const std::string& path, bool overwrite) {
            if (!overwrite) refuse_to_replace(runtime(), path, "save_weights");
            built(self);
            if (!is_keras_weights_file(path)) return self.save_weights(path);
            // Layers without a Keras layout are refused on every rank, before rank 0 writes.
            keras_groups(self.keras_layers());
            self.save_weights(
                path, [types = self.keras_layers()](const std::string& p, const auto& weights) {
                  write_keras_weights(p, weights, types);
                });
          },
          py::arg("path"), py::arg("overwrite") = true,
          "Rank 0 writes the weights: Keras' weights file for a path ending in .h5 (Note [Keras "
          "weights files]), else safetensors")
      .def(
          "load_weights",
          [](keras::Sequential& self, const std::string& path) {
            if (!is_keras_weights_file(path)) return self.load_weights(path);
            self.load_weights(path, [types = self.keras_layers()](const std::string& p) {
              return read_keras_weights(p, types);
            });
          },
          py::arg("path"), "Keras' weights file for a path ending in .h5, else safetensors")
      // model.layers' parts (keras_methods.cpp): Keras' description and each layer's variables.
      .def("_keras_config", [built](keras::Sequential& self) { return built(self).keras_config(); })
      .def("_keras_layer_variables",
           [built](keras::Sequential& self) {
             return keras_layer_variables(built(self).get_weights_in_own_layout(),
                                          self.keras_layers());
           })
      .def("_set_keras_layer_variables",
           [built](keras::Sequential& self, size_t index, const py::list& variables) {
             built(self).set_weights_in_own_layout(
                 with_keras_layer_variables(self.get_weights_in_own_layout(), self.keras_layers(),
                                            index, variables),
                 "layers[" + std::to_string(index) + "].set_weights");
           })
      .def(
          "save",
          [runtime, built](keras::Sequential& self, const std::string& path, bool overwrite) {
            if (path.size() < 6 || path.compare(path.size() - 6, 6, ".keras") != 0)
              throw ConfigError("Sequential: save: " + path +
                                ": a model file's name ends in .keras (Keras' format); the "
                                "weights alone: save_weights");
            if (!overwrite) refuse_to_replace(runtime(), path, "save");
            built(self);
            nlohmann::json config = nlohmann::json::parse(self.keras_config());
            const std::string compile = self.keras_compile_config();
            std::optional<keras::OptimizerSlots> slots;
            if (!compile.empty()) {  // Note [Keras optimizer state]
              config["compile_config"] = nlohmann::json::parse(compile);
              slots = self.optimizer_slots();
            }
            const std::string name =
                compile.empty() ? "" : config["compile_config"]["optimizer"]["config"]["name"];
            self.save_weights(path, [&](const std::string& p, const auto& weights) {
              write_keras_model(p, weights, self.keras_layers(), config.dump(), slots, name);
            });
          },
          py::arg("filepath"), py::arg("overwrite") = true,
          "Rank 0 writes Keras' .keras file of the model (Note [Keras model files])");
}

}  // namespace ddp::python
