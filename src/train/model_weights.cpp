#include "train/model_weights.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>

#include "comm/agreement.h"
#include "core/error.h"
#include "nn/torch_layout.h"

namespace ddp {
namespace {

// Copies the tensor of each entry from `tensors` into `values` (from `layout`), removing the
// tensors it takes; throws naming `origin` and the tensor.
void take_tensors(std::vector<NamedTensor>& tensors, const std::vector<ParamEntry>& entries,
                  std::vector<float>& values, const std::string& origin, WeightLayout layout) {
  for (const ParamEntry& e : entries) {
    auto it = std::find_if(tensors.begin(), tensors.end(),
                           [&](const NamedTensor& t) { return t.name == e.name; });
    if (it == tensors.end()) throw CheckpointError(origin + ": no tensor named " + e.name);
    const Shape expected = layout == WeightLayout::kPyTorch ? torch_shape(e) : e.shape;
    if (it->shape != expected)
      throw CheckpointError(origin + ": " + e.name + " has shape " + it->shape.str() +
                            ", the model expects " + expected.str());
    if (it->values.size() != e.count)
      throw CheckpointError(origin + ": " + e.name + " holds " + std::to_string(it->values.size()) +
                            " values, its shape " + it->shape.str() + " needs " +
                            std::to_string(e.count));
    const auto bad = std::find_if(it->values.begin(), it->values.end(),
                                  [](float v) { return !std::isfinite(v); });
    if (bad != it->values.end())
      throw CheckpointError(origin + ": " + e.name + " holds a non-finite value (" +
                            std::to_string(*bad) + ") at element " +
                            std::to_string(bad - it->values.begin()));
    const std::vector<float> ours =
        layout == WeightLayout::kPyTorch ? from_torch_layout(e, it->values) : it->values;
    std::copy(ours.begin(), ours.end(), values.begin() + static_cast<ptrdiff_t>(e.offset));
    tensors.erase(it);
  }
}

void append_named(std::vector<NamedTensor>& tensors, const std::vector<ParamEntry>& entries,
                  std::span<const float> values, WeightLayout layout) {
  for (const ParamEntry& e : entries) {
    const std::span<const float> ours = values.subspan(e.offset, e.count);
    if (layout == WeightLayout::kPyTorch)
      tensors.push_back({e.name, torch_shape(e), to_torch_layout(e, ours)});
    else
      tensors.push_back({e.name, e.shape, {ours.begin(), ours.end()}});
  }
}

// PyTorch's nn.LSTM (and nn.RNN) adds two biases into the same sum, bias_ih_l0 and bias_hh_l0 (and
// a reverse direction's bias_ih_l0_reverse and bias_hh_l0_reverse), where an lstm layer has Keras'
// one. A PyTorch file's bias_hh is added into its bias_ih as it is read; written in PyTorch's
// layout, a zero bias_hh follows each bias_ih, so that nn.LSTM's load_state_dict takes the file as
// it is.
constexpr std::string_view kFirstBias = ".bias_ih_l0", kSecondBias = ".bias_hh_l0";

// `name` with the bias `from` at its end (or before _reverse) named `to`; empty where it is not
// such a bias.
std::string other_bias(const std::string& name, std::string_view from, std::string_view to) {
  for (const std::string_view end : {std::string_view(""), std::string_view("_reverse")}) {
    const size_t tail = from.size() + end.size();
    if (name.size() > tail && name.ends_with(end) &&
        name.compare(name.size() - tail, from.size(), from) == 0)
      return name.substr(0, name.size() - tail) + std::string(to) + std::string(end);
  }
  return "";
}

void fold_second_biases(std::vector<NamedTensor>& tensors, const std::string& origin) {
  for (auto second = tensors.begin(); second != tensors.end();) {
    const std::string first_name = other_bias(second->name, kSecondBias, kFirstBias);
    const auto first = std::find_if(tensors.begin(), tensors.end(), [&](const NamedTensor& t) {
      return !first_name.empty() && t.name == first_name;
    });
    if (first == tensors.end()) {  // anything else is left for the model to refuse by name
      ++second;
      continue;
    }
    if (first->values.size() != second->values.size())
      throw CheckpointError(origin + ": " + second->name + " holds " +
                            std::to_string(second->values.size()) + " values, " + first_name + " " +
                            std::to_string(first->values.size()));
    for (size_t i = 0; i < first->values.size(); ++i) first->values[i] += second->values[i];
    second = tensors.erase(second);
  }
}

// A gru layer keeps its two biases as one parameter, bias_ih_hh_l0 (2, 3 units; and a reverse
// direction's bias_ih_hh_l0_reverse), as Keras keeps them; PyTorch's nn.GRU as bias_ih_l0 and
// bias_hh_l0, its rows. The two names of PyTorch's for `name`, or none where it is not such a bias.
constexpr std::string_view kBothBiases = ".bias_ih_hh_l0";

std::optional<std::pair<std::string, std::string>> torch_biases(const std::string& name) {
  const std::string first = other_bias(name, kBothBiases, kFirstBias);
  if (first.empty()) return std::nullopt;
  return std::pair{first, other_bias(name, kBothBiases, kSecondBias)};
}

// PyTorch's two biases of each of the model's bias_ih_hh parameters in `tensors`, as one tensor of
// the parameter's name.
void join_torch_biases(std::vector<NamedTensor>& tensors, const std::vector<ParamEntry>& entries,
                       const std::string& origin) {
  const auto find = [&](const std::string& name) {
    return std::find_if(tensors.begin(), tensors.end(),
                        [&](const NamedTensor& t) { return t.name == name; });
  };
  for (const ParamEntry& e : entries) {
    const auto names = torch_biases(e.name);
    if (!names || find(names->first) == tensors.end() || find(names->second) == tensors.end())
      continue;  // left for take_tensors to name what is missing
    NamedTensor joined{e.name, e.shape, {}};
    for (const std::string& part : {names->first, names->second}) {
      const auto t = find(part);
      if (t->shape != Shape{e.shape[1]})
        throw CheckpointError(origin + ": " + part + " has shape " + t->shape.str() +
                              ", the model expects " + Shape{e.shape[1]}.str());
      joined.values.insert(joined.values.end(), t->values.begin(), t->values.end());
      tensors.erase(t);
    }
    tensors.push_back(std::move(joined));
  }
}

}  // namespace

std::vector<NamedTensor> named_weights(Trainer& trainer, WeightLayout layout) {
  std::vector<NamedTensor> params, buffers;
  append_named(params, trainer.model().param_entries(), trainer.params_to_host(), layout);
  append_named(buffers, trainer.model().buffer_entries(), trainer.buffers_to_host(), layout);
  // Layer by layer, as a PyTorch state_dict: a layer's parameters, frozen or not (Note [frozen
  // layers]), then its buffers, whichever layers are frozen.
  std::vector<std::pair<std::tuple<size_t, bool, size_t>, NamedTensor>> ordered;
  const std::vector<ParamEntry>& trained = trainer.model().param_entries();
  const std::vector<ParamEntry>& kept = trainer.model().buffer_entries();
  for (size_t i = 0; i < trained.size(); ++i)
    ordered.push_back({{trained[i].layer, false, i}, std::move(params[i])});
  for (size_t i = 0; i < kept.size(); ++i)
    ordered.push_back({{kept[i].layer, !kept[i].frozen, i}, std::move(buffers[i])});
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<NamedTensor> tensors;
  for (auto& [order, tensor] : ordered) {
    const auto biases = torch_biases(tensor.name);
    if (biases && layout == WeightLayout::kPyTorch) {  // a gru's: its rows, PyTorch's two
      const auto half = static_cast<ptrdiff_t>(tensor.values.size() / 2);
      const Shape row{tensor.shape[1]};
      tensors.push_back(
          {biases->first, row, {tensor.values.begin(), tensor.values.begin() + half}});
      tensors.push_back({biases->second, row, {tensor.values.begin() + half, tensor.values.end()}});
      continue;
    }
    const std::string second = other_bias(tensor.name, kFirstBias, kSecondBias);
    tensors.push_back(std::move(tensor));
    if (!second.empty() && layout == WeightLayout::kPyTorch)
      tensors.push_back(
          {second, tensors.back().shape, std::vector<float>(tensors.back().values.size(), 0.0f)});
  }
  return tensors;
}

std::vector<NamedTensor> named_parameter_values(Trainer& trainer, std::span<const float> flat,
                                                WeightLayout layout) {
  std::vector<NamedTensor> tensors;
  append_named(tensors, trainer.model().param_entries(), flat, layout);
  return tensors;
}

std::vector<float> parameter_values(Trainer& trainer, std::vector<NamedTensor> tensors,
                                    const std::string& origin, WeightLayout layout) {
  std::vector<float> values(trainer.model().param_count());
  take_tensors(tensors, trainer.model().param_entries(), values, origin, layout);
  if (!tensors.empty())
    throw CheckpointError(origin + ": tensor " + tensors.front().name + " is not in the model");
  return values;
}

void load_named_weights(Communicator& comm, Trainer& trainer,
                        const std::function<std::vector<NamedTensor>()>& on_rank0,
                        const std::string& origin, WeightLayout layout) {
  std::vector<float> params(trainer.model().param_count());
  std::vector<float> buffers(trainer.model().buffers().size());
  run_agreed(comm, [&] {
    if (comm.rank() != 0) return;
    std::vector<NamedTensor> tensors = on_rank0();
    join_torch_biases(tensors, trainer.model().param_entries(), origin);
    fold_second_biases(tensors, origin);
    take_tensors(tensors, trainer.model().param_entries(), params, origin, layout);
    take_tensors(tensors, trainer.model().buffer_entries(), buffers, origin, layout);
    if (!tensors.empty())
      throw CheckpointError(origin + ": tensor " + tensors.front().name + " is not in the model");
  });
  comm.broadcast(std::span<float>(params), 0);
  comm.broadcast(std::span<float>(buffers), 0);
  trainer.load_params(params, buffers);
}

}  // namespace ddp
