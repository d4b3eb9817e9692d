#include "model_files.h"

#include <pybind11/stl.h>

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "comm/agreement.h"
#include "core/durable_write.h"
#include "core/error.h"
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
void write_keras_model(const std::string& path, const std::vector<NamedTensor>& weights,
                       const std::vector<std::string>& layer_types, const std::string& config) {
  const std::string h5 = keras_weights_bytes(path, weights, layer_types);
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

}  // namespace

void define_file_methods(py::class_<keras::Sequential>& sequential, keras::Runtime& (*runtime)(),
                         keras::Sequential& (*built)(keras::Sequential&)) {
  sequential
      .def(
          "save_weights",
          [runtime, built](keras::Sequential& self, const std::string& path, bool overwrite) {
            if (!overwrite) refuse_to_replace(runtime(), path, "save_weights");
            built(self);
            if (!is_keras_weights_file(path)) return self.save_weights(path);
            self.save_weights(
                path, [types = self.layer_types()](const std::string& p, const auto& weights) {
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
            self.load_weights(path, [types = self.layer_types()](const std::string& p) {
              return read_keras_weights(p, types);
            });
          },
          py::arg("path"), "Keras' weights file for a path ending in .h5, else safetensors")
      .def(
          "save",
          [runtime, built](keras::Sequential& self, const std::string& path, bool overwrite) {
            if (path.size() < 6 || path.compare(path.size() - 6, 6, ".keras") != 0)
              throw ConfigError("Sequential: save: " + path +
                                ": a model file's name ends in .keras (Keras' format); the "
                                "weights alone: save_weights");
            if (!overwrite) refuse_to_replace(runtime(), path, "save");
            built(self);
            self.save_weights(path, [types = self.layer_types(), config = self.keras_config()](
                                        const std::string& p, const auto& weights) {
              write_keras_model(p, weights, types, config);
            });
          },
          py::arg("filepath"), py::arg("overwrite") = true,
          "Rank 0 writes Keras' .keras file of the model (Note [Keras model files])");
}

}  // namespace ddp::python
