#include "keras_optimizer_vars.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

#include "core/error.h"
#include "keras_weights_file.h"

namespace ddp::python {
namespace {

namespace py = pybind11;
using namespace pybind11::literals;

// How Keras keeps one of ddp-trainer's optimizers' state (Note [Keras optimizer state]).
struct KerasSlotLayout {
  bool interleaved;  // each variable's slots together (Adam), or each slot's variables (grouped)
  std::vector<std::pair<const char*, const char*>> slots;  // ddp-trainer's buffer, Keras' slot
  float sign;                                              // Keras' slot = sign x ddp-trainer's
};
std::optional<KerasSlotLayout> keras_slot_layout(const std::string& optimizer) {
  if (optimizer == "adam" || optimizer == "adamw")
    return KerasSlotLayout{true, {{"m", "momentum"}, {"v", "velocity"}}, 1};
  if (optimizer == "sgd_keras") return KerasSlotLayout{false, {{"velocity", "momentum"}}, -1};
  if (optimizer == "rmsprop_keras")
    return KerasSlotLayout{false,
                           {{"square_avg", "velocity"},
                            {"momentum_buffer", "momentum"},
                            {"grad_avg", "average_gradient"}},
                           1};
  if (optimizer == "adagrad_keras") return KerasSlotLayout{false, {{"sum", "accumulator"}}, 1};
  if (optimizer == "adamax_keras")
    return KerasSlotLayout{true, {{"exp_avg", "momentum"}, {"exp_inf", "norm"}}, 1};
  if (optimizer == "nadam_keras")
    return KerasSlotLayout{true, {{"exp_avg", "momentum"}, {"exp_avg_sq", "velocity"}}, 1};
  if (optimizer == "lion") return KerasSlotLayout{false, {{"exp_avg", "momentum"}}, 1};
  return std::nullopt;  // PyTorch's rules: Keras has no such optimizer
}

// One slot dataset: which of `slots.buffers`, which tensor in it, and the Keras slot's name.
struct SlotVariable {
  size_t buffer;
  size_t tensor;
  KerasLayout layout;
  std::string what;  // "the momentum of layers.0.weight"
  float sign;        // Keras' slot = sign x ddp-trainer's
};

// The slots of `slots` in the order Keras keeps them, for a model whose layers are `model_layers`:
// the weights' averages first where the optimizer keeps them (Note [weight average]: Keras'
// use_ema builds them before the optimizer's own slots), as they are.
std::vector<SlotVariable> slot_order(const keras::OptimizerSlots& slots,
                                     const KerasSlotLayout& layout,
                                     const KerasLayers& model_layers) {
  std::vector<std::pair<size_t, const char*>> buffers;  // in Keras' order of slots
  std::optional<size_t> averages;
  for (size_t b = 0; b < slots.buffers.size(); ++b)
    if (slots.buffers[b].first == "average") averages = b;
  for (const auto& [ours, theirs] : layout.slots)
    for (size_t b = 0; b < slots.buffers.size(); ++b)
      if (slots.buffers[b].first == ours) buffers.emplace_back(b, theirs);
  if (buffers.size() + averages.has_value() != slots.buffers.size())
    throw std::logic_error(slots.optimizer + ": a state buffer Keras has no slot for");
  if (slots.buffers.empty()) return {};
  const std::vector<NamedTensor>& tensors = slots.buffers.front().second;
  const std::vector<KerasTrainedVariable> variables =
      keras_trained_variables(model_layers, tensors);
  std::vector<SlotVariable> out;
  const auto add = [&](size_t index, const char* slot, float sign, const KerasTrainedVariable& v) {
    const std::vector<NamedTensor>& held = slots.buffers[index].second;
    for (size_t t = 0; t < held.size(); ++t)
      if (held[t].name == v.name)
        out.push_back({index, t, v.layout, std::string("the ") + slot + " of " + v.name, sign});
  };
  if (averages)
    for (const KerasTrainedVariable& v : variables) add(*averages, "average", 1, v);
  if (layout.interleaved) {
    for (const KerasTrainedVariable& v : variables)
      for (const auto& [index, slot] : buffers) add(index, slot, layout.sign, v);
  } else {
    for (const auto& [index, slot] : buffers)
      for (const KerasTrainedVariable& v : variables) add(index, slot, layout.sign, v);
  }
  if (out.size() != slots.buffers.size() * tensors.size())
    throw std::logic_error(slots.optimizer + ": a parameter Keras has no variable for");
  return out;
}

std::vector<int64_t> keras_shape(const Shape& ours, const std::vector<int>& to_keras) {
  std::vector<int64_t> dims = ours.dims();
  if (to_keras.empty()) return dims;
  std::vector<int64_t> theirs;
  for (const int d : to_keras) theirs.push_back(dims[static_cast<size_t>(d)]);
  return theirs;
}

}  // namespace

void add_keras_optimizer_vars(const py::object& file, const keras::OptimizerSlots& slots,
                              const std::string& keras_name, const KerasLayers& model_layers) {
  const std::optional<KerasSlotLayout> layout = keras_slot_layout(slots.optimizer);
  if (!layout) throw std::logic_error(slots.optimizer + " has no Keras form");
  const py::module_ np = py::module_::import("numpy");
  const py::object group = file.attr("create_group")("optimizer/vars");
  group.attr("attrs")["name"] = keras_name;
  int index = 0;
  const auto put = [&](const py::object& data) {
    group.attr("create_dataset")(std::to_string(index++), "data"_a = data);
  };
  put(np.attr("int64")(slots.iterations));
  if (!std::isnan(slots.learning_rate)) put(np.attr("float32")(slots.learning_rate));
  for (const SlotVariable& s : slot_order(slots, *layout, model_layers)) {
    NamedTensor tensor = slots.buffers[s.buffer].second[s.tensor];
    for (float& x : tensor.values) x *= s.sign;
    put(keras_array(tensor, s.layout));
  }
  if (!slots.buffers.empty())
    for (const double x : slots.scalars) put(np.attr("float32")(x));
}

std::optional<keras::OptimizerSlots> read_keras_optimizer_vars(const std::string& path,
                                                               const std::string& bytes,
                                                               const keras::OptimizerSlots& like,
                                                               const KerasLayers& model_layers) {
  const std::optional<KerasSlotLayout> layout = keras_slot_layout(like.optimizer);
  if (!layout) return std::nullopt;
  const py::gil_scoped_acquire gil;
  const std::string where = path + ": optimizer/vars";
  try {
    const OpenKerasWeights opened = open_keras_weights(path, bytes);
    const py::object& file = opened.file;
    if (!file.attr("__contains__")("optimizer/vars").cast<bool>()) return std::nullopt;
    const py::object group = file["optimizer/vars"];
    const std::vector<SlotVariable> order = slot_order(like, *layout, model_layers);
    const size_t stored = py::len(group);
    const auto dataset = [&](size_t i) {
      const std::string key = std::to_string(i);
      if (!group.attr("__contains__")(key).cast<bool>())
        throw CheckpointError(where + ": holds " + std::to_string(stored) + " variables, and no " +
                              key);
      return py::object(group[py::str(key)]);
    };
    const auto scalar = [&](size_t i, const std::string& kinds, const char* what) {
      const py::object d = dataset(i);
      const std::string kind = py::str(d.attr("dtype").attr("kind"));
      if (d.attr("ndim").cast<int>() != 0 || kinds.find(kind) == std::string::npos)
        throw CheckpointError(where + "/" + std::to_string(i) + ": " + what + " is one " +
                              (kinds == "iu" ? "integer" : "real number") + ", not " +
                              py::repr(d).cast<std::string>());
      return py::object(d[py::tuple()]);
    };
    const int64_t iterations = scalar(0, "iu", "the optimizer's iterations").cast<int64_t>();
    if (stored <= 2 && !order.empty()) {  // Keras' optimizer before its first step: not built
      if (iterations != 0)
        throw CheckpointError(where + ": the iterations are " + std::to_string(iterations) +
                              ", and the optimizer's moments are not there");
      return std::nullopt;
    }
    // Keras keeps a rate variable unless the rate is a schedule's.
    const bool has_rate = !std::isnan(like.learning_rate);
    const size_t first = has_rate ? 2 : 1;
    // Scalars after the slots (Nadam's product of momentum coefficients) follow from the
    // iterations here: counted, not read.
    if (stored != first + order.size() + like.scalars.size())
      throw CheckpointError(where + ": holds " + std::to_string(stored) + " variables, not " +
                            std::to_string(first + order.size() + like.scalars.size()) +
                            ": the iterations, " + (has_rate ? "the learning rate, " : "") +
                            "and " + std::to_string(order.size()) + " slots of " + like.optimizer +
                            (like.scalars.empty() ? "" : " and its momentum product") +
                            " for this model");
    keras::OptimizerSlots out = like;
    out.iterations = iterations;
    if (has_rate) {
      out.learning_rate = scalar(1, "f", "the learning rate").cast<double>();
      if (!(out.learning_rate > 0 && std::isfinite(out.learning_rate)))
        throw CheckpointError(where + "/1: the learning rate is " +
                              std::to_string(out.learning_rate) + ", not a finite rate > 0");
    }
    for (size_t i = 0; i < order.size(); ++i) {
      const SlotVariable& s = order[i];
      const std::string at = where + "/" + std::to_string(first + i) + " (" + s.what + ")";
      const py::object d = dataset(first + i);
      NamedTensor& tensor = out.buffers[s.buffer].second[s.tensor];
      const std::vector<int64_t> expected = keras_shape(tensor.shape, s.layout.to_keras);
      const std::vector<int64_t> shape = d.attr("shape").cast<std::vector<int64_t>>();
      if (shape != expected)
        throw CheckpointError(at + ": has shape " + Shape(shape).str() + ", the model's is " +
                              Shape(expected).str());
      const std::string kind = py::str(d.attr("dtype").attr("kind"));
      if (kind != "f")
        throw CheckpointError(at + ": holds " + py::str(d.attr("dtype")).cast<std::string>() +
                              " values, not real numbers");
      std::vector<float> values = from_keras_array(d, s.layout).second;
      const auto bad =
          std::find_if(values.begin(), values.end(), [](float x) { return !std::isfinite(x); });
      if (bad != values.end())
        throw CheckpointError(at + ": holds a non-finite value (" + std::to_string(*bad) + ")");
      for (float& x : values) x *= s.sign;
      tensor.values = std::move(values);
    }
    return out;
  } catch (const py::error_already_set& e) {
    throw CheckpointError(where + ": " + one_line(e));
  }
}

}  // namespace ddp::python
