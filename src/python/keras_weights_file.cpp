#include "keras_weights_file.h"

#include "keras_variables.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <map>
#include <set>
#include <span>
#include <tuple>

#include "core/durable_write.h"
#include "core/error.h"
#include "core/input_file.h"

namespace ddp::python {
namespace {

namespace py = pybind11;
using namespace pybind11::literals;

}  // namespace

std::string one_line(const py::error_already_set& e) {
  std::string text = py::str(e.type().attr("__name__")).cast<std::string>() + ": " +
                     py::str(e.value()).cast<std::string>();
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

namespace {

py::module_ h5py_for(const std::string& path) {
  try {
    return py::module_::import("h5py");
  } catch (const py::error_already_set&) {
    throw CheckpointError(path +
                          ": Keras weights files (.h5) need h5py (pip install h5py, or apt-get "
                          "install python3-h5py)");
  }
}

bool has_variable(const std::vector<NamedTensor>& weights, const std::string& prefix,
                  const Variable& v) {
  const std::string name = variable_name(prefix, v);
  return std::any_of(weights.begin(), weights.end(),
                     [&name](const NamedTensor& t) { return t.name == name; });
}

// The variables of the layer whose parameters' names start with `prefix`, in Keras' order and
// layouts, from `weights` in ddp-trainer's own layouts; `origin` names the weights in errors.
py::list keras_variables(const std::vector<NamedTensor>& weights, const std::string& prefix,
                         const KerasLayer& layer, const std::string& origin) {
  py::list out;
  for (const Variable& v : layer.variables) {
    const std::string name = variable_name(prefix, v);
    const auto t = std::find_if(weights.begin(), weights.end(),
                                [&name](const NamedTensor& w) { return w.name == name; });
    if (t == weights.end() && v.optional) continue;
    if (t == weights.end()) throw CheckpointError(origin + ": the model has no " + name);
    out.append(keras_array(*t, v.layout));
  }
  return out;
}

}  // namespace

namespace {

// `a` with the first two of its three blocks along `axis` swapped (-1: `a` as it is); its own
// inverse.
py::object gates_swapped(const py::object& a, int axis) {
  if (axis < 0) return a;
  const py::module_ np = py::module_::import("numpy");
  const py::list blocks = np.attr("split")(a, 3, "axis"_a = axis);
  return np.attr("ascontiguousarray")(
      np.attr("concatenate")(py::make_tuple(blocks[1], blocks[0], blocks[2]), "axis"_a = axis));
}

}  // namespace

py::array keras_array(const NamedTensor& tensor, const KerasLayout& layout) {
  const py::object a = gates_swapped(py::array_t<float>(tensor.shape.dims(), tensor.values.data()),
                                     layout.gate_axis);
  if (layout.to_keras.empty()) return a;
  const py::module_ np = py::module_::import("numpy");
  return np.attr("ascontiguousarray")(np.attr("transpose")(a, layout.to_keras));
}

std::pair<Shape, std::vector<float>> from_keras_array(const py::handle& array,
                                                      const KerasLayout& layout) {
  const py::module_ np = py::module_::import("numpy");
  py::array_t<float, py::array::c_style | py::array::forcecast> a =
      np.attr("asarray")(array, "dtype"_a = "float32");
  const std::vector<int>& to_keras = layout.to_keras;
  if (!to_keras.empty()) {
    std::vector<int> back(to_keras.size());  // the inverse permutation
    for (size_t d = 0; d < back.size(); ++d) back[to_keras[d]] = static_cast<int>(d);
    a = np.attr("ascontiguousarray")(np.attr("transpose")(a, back));
  }
  a = gates_swapped(a, layout.gate_axis);
  return {Shape(std::vector<int64_t>(a.shape(), a.shape() + a.ndim())),
          std::vector<float>(a.data(), a.data() + a.size())};
}

std::vector<KerasTrainedVariable> keras_trained_variables(const KerasLayers& model_layers,
                                                          const std::vector<NamedTensor>& params) {
  std::vector<KerasTrainedVariable> out;
  for (const auto& [prefix, group_name, layer, type] : keras_groups(model_layers))
    for (const Variable& v : layer->variables) {
      const std::string name = variable_name(prefix, v);
      if (std::any_of(params.begin(), params.end(),
                      [&name](const NamedTensor& t) { return t.name == name; }))
        out.push_back({name, v.layout});
    }
  return out;
}

py::list keras_layer_variables(const std::vector<NamedTensor>& weights,
                               const KerasLayers& model_layers) {
  py::list out;
  for (const keras::KerasLayerRef& ref : model_layers) {
    const KerasLayer* layer = keras_layer(ref.type);
    out.append(layer ? keras_variables(weights, ref.prefix, *layer, "Sequential: layers")
                     : py::list());
  }
  return out;
}

std::vector<NamedTensor> with_keras_layer_variables(std::vector<NamedTensor> weights,
                                                    const KerasLayers& model_layers, size_t index,
                                                    const py::list& variables) {
  const std::string where = "Sequential: layers[" + std::to_string(index) + "].set_weights";
  const std::string& prefix = model_layers.at(index).prefix;
  const KerasLayer* layer = keras_layer(model_layers[index].type);
  const size_t given = py::len(variables);
  const py::list current = layer ? keras_variables(weights, prefix, *layer, where) : py::list();
  const size_t held = current.size();
  if (given != held)
    throw ConfigError(where + ": the layer has " + std::to_string(held) + " variables, " +
                      std::to_string(given) + " given");
  const py::module_ np = py::module_::import("numpy");
  for (size_t i = 0; i < given; ++i) {
    const Variable& v = layer->variables[i];
    const py::tuple shape = np.attr("shape")(variables[i]), expected = current[i].attr("shape");
    if (!shape.equal(expected))
      throw ConfigError(where + ": variable " + std::to_string(i) + " has shape " +
                        py::repr(shape).cast<std::string>() + ", the layer's is " +
                        py::repr(expected).cast<std::string>());
    const std::string name = variable_name(prefix, v);
    for (NamedTensor& t : weights)
      if (t.name == name) std::tie(t.shape, t.values) = from_keras_array(variables[i], v.layout);
  }
  return weights;
}

bool is_keras_weights_file(const std::string& path) {
  return path.size() >= 3 && path.compare(path.size() - 3, 3, ".h5") == 0;
}

std::string keras_weights_bytes(const std::string& path, const std::vector<NamedTensor>& weights,
                                const KerasLayers& model_layers,
                                const std::function<void(const py::object&)>& more) {
  const py::gil_scoped_acquire gil;
  const py::module_ h5py = h5py_for(path);
  std::string bytes;
  try {
    const py::object memory = py::module_::import("io").attr("BytesIO")();
    const py::object file = h5py.attr("File")(memory, "w");
    for (const KerasGroup& g : keras_groups(model_layers)) {
      // As Keras: each layer's vars group named after the layer, each subgroup's as Keras names it.
      file.attr("create_group")(g.name + "/vars").attr("attrs")["name"] =
          g.name.substr(g.name.find('/') + 1);
      for (const auto& [below, name] : g.layer->subgroups)
        file.attr("create_group")(g.name + "/" + below + "/vars").attr("attrs")["name"] = name;
      std::map<std::string, int> written;  // per group
      const py::list variables = keras_variables(weights, g.prefix, *g.layer, path);
      size_t next = 0;
      for (const Variable& v : g.layer->variables) {
        if (!has_variable(weights, g.prefix, v)) continue;  // an absent optional bias
        const std::string vars = g.vars(v);
        file[py::str(vars)].attr("create_dataset")(std::to_string(written[vars]++),
                                                   "data"_a = variables[next++]);
      }
    }
    if (more) more(file);
    file.attr("close")();
    bytes = memory.attr("getvalue")().cast<std::string>();
  } catch (const py::error_already_set& e) {
    throw CheckpointError(path + ": writing the Keras weights file: " + one_line(e));
  }
  return bytes;
}

void write_keras_weights(const std::string& path, const std::vector<NamedTensor>& weights,
                         const KerasLayers& model_layers) {
  const std::string bytes = keras_weights_bytes(path, weights, model_layers);
  write_file_durably(path, std::as_bytes(std::span(bytes.data(), bytes.size())));
}

std::vector<NamedTensor> read_keras_weights(const std::string& path,
                                            const KerasLayers& model_layers) {
  const std::vector<std::byte> raw = read_whole_file<CheckpointError>(path);
  return keras_weights_from_bytes(
      path, std::string(reinterpret_cast<const char*>(raw.data()), raw.size()), model_layers);
}

OpenKerasWeights open_keras_weights(const std::string& path, const std::string& bytes) {
  const py::module_ h5py = h5py_for(path);
  OpenKerasWeights out;
  out.memory = py::module_::import("io").attr("BytesIO")(py::bytes(bytes));
  try {
    out.file = h5py.attr("File")(out.memory, "r");
    return out;
  } catch (const py::error_already_set& e) {
    throw CheckpointError(path + ": not a Keras weights file (HDF5): " + one_line(e));
  }
}

namespace {

// Appends to `out` the `variables` of the layer whose names start with `prefix`, Keras' datasets
// 0, 1, ... of the group `vars`; `where` names the layer in errors.
void read_variables(const py::object& file, const py::module_& h5py, const std::string& vars,
                    const std::string& where, const std::string& prefix,
                    const std::vector<const Variable*>& variables, std::vector<NamedTensor>& out) {
  if (!file.attr("__contains__")(vars).cast<bool>())
    throw CheckpointError(where + ": not in the file, whose layers are not this model's");
  const py::object group = file[py::str(vars)];
  if (!py::isinstance(group, h5py.attr("Group")))
    throw CheckpointError(where + ": vars is not a group of variables");
  const auto stored = py::len(group);
  const size_t required = static_cast<size_t>(std::count_if(
      variables.begin(), variables.end(), [](const Variable* v) { return !v->optional; }));
  if (stored < required || stored > variables.size())
    throw CheckpointError(
        where + ": holds " + std::to_string(stored) + " variables, not " +
        std::to_string(required) +
        (required < variables.size() ? " or " + std::to_string(variables.size()) : ""));
  for (size_t i = 0; i < stored; ++i) {
    const Variable& v = *variables[i];
    const py::object dataset = group[py::str(std::to_string(i))];
    const py::object attrs = dataset.attr("attrs");
    if (attrs.attr("__contains__")("dtype").cast<bool>())  // Keras' bfloat16 as uint16
      throw CheckpointError(where + ": variable " + std::to_string(i) + " is stored as " +
                            py::str(attrs["dtype"]).cast<std::string>() + "; only float32 is read");
    const std::string kind = py::str(dataset.attr("dtype").attr("kind"));
    if (kind != "f" && kind != "i" && kind != "u")  // not complex, bool, strings, records
      throw CheckpointError(where + ": variable " + std::to_string(i) + " holds " +
                            py::str(dataset.attr("dtype")).cast<std::string>() +
                            " values; a weight is a real number");
    const size_t dims = dataset.attr("ndim").cast<size_t>();
    const std::vector<int>& to_keras = v.layout.to_keras;
    if (!to_keras.empty() && dims != to_keras.size())
      throw CheckpointError(where + ": variable " + std::to_string(i) + " has " +
                            std::to_string(dims) + " dimensions, not " +
                            std::to_string(to_keras.size()));
    auto [shape, values] = from_keras_array(dataset, v.layout);
    out.push_back({variable_name(prefix, v), std::move(shape), std::move(values)});
  }
}

// Whether `group` (a layer's) or a group below it holds variables.
bool holds_variables(const py::object& group) {
  if (!py::hasattr(group, "keys")) return false;  // a dataset
  for (const py::handle name : group) {
    const py::object member = group[name];
    const bool vars = py::str(name).cast<std::string>() == "vars";
    if (vars ? py::hasattr(member, "keys") && py::len(member) > 0 : holds_variables(member))
      return true;
  }
  return false;
}

}  // namespace

std::vector<NamedTensor> keras_weights_from_bytes(const std::string& path, const std::string& bytes,
                                                  const KerasLayers& model_layers) {
  const py::gil_scoped_acquire gil;
  const py::module_ h5py = h5py_for(path);
  std::vector<NamedTensor> out;
  try {
    const OpenKerasWeights opened = open_keras_weights(path, bytes);
    const py::object& file = opened.file;
    std::set<std::string> used;
    for (const KerasGroup& g : keras_groups(model_layers)) {
      used.insert(g.name);
      // The layer's variables group by group (a Bidirectional's two cells), in Keras' order.
      std::vector<std::string> groups;
      for (const Variable& v : g.layer->variables)
        if (std::find(groups.begin(), groups.end(), g.vars(v)) == groups.end())
          groups.push_back(g.vars(v));
      for (const std::string& vars : groups) {
        std::vector<const Variable*> variables;
        for (const Variable& v : g.layer->variables)
          if (g.vars(v) == vars) variables.push_back(&v);
        read_variables(file, h5py, vars,
                       path + ": " + g.name + " (" + g.prefix + ", " + g.type + ")" +
                           (groups.size() > 1 ? ": " + vars.substr(g.name.size() + 1) : ""),
                       g.prefix, variables, out);
      }
    }
    if (file.attr("__contains__")("layers").cast<bool>())
      for (const py::handle name : file["layers"]) {
        const std::string group_name = "layers/" + py::str(name).cast<std::string>();
        if (!used.count(group_name) && holds_variables(file[py::str(group_name)]))
          throw CheckpointError(path + ": " + group_name +
                                " holds variables, and the model has no such layer");
      }
  } catch (const py::error_already_set& e) {
    throw CheckpointError(path + ": reading the Keras weights file: " + one_line(e));
  }
  return out;
}

}  // namespace ddp::python
