#include "nn/sequential.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "core/counter_hash.h"
#include "core/error.h"

namespace ddp {

// Note [frozen layers]: a frozen layer (Keras' layer.trainable = False, PyTorch's
// requires_grad_(False)) keeps its parameters with the model's state that is not trained, in
// buffers() after the layer's own buffers, under the names they have as parameters. So the trained
// flat buffer, its gradients, the optimizer's state and the all-reduce hold only what is trained,
// as Keras' trainable_variables, while checkpoints, weights files, exports and the replica check
// keep the frozen parameters as they keep running statistics (a checkpoint of another set of
// frozen layers is another model). Backward stops at the lowest trained layer; a frozen layer above
// one passes the gradient on: Dense computes its input gradient alone, BatchNormalization runs in
// inference mode, with its running statistics, in training too (Keras 3's rule), and the others
// compute parameter gradients into a scratch buffer that nothing reads.
Sequential::Sequential(ComputeBackend& backend, Shape input,
                       std::vector<std::unique_ptr<Layer>> layers)
    : backend_(backend), input_(std::move(input)), layers_(std::move(layers)) {
  if (layers_.empty()) throw ConfigError("model.layers: the model has no layers");
  // Note [parameter names]: "layers.<k>.<param>" with k counting only layers that have
  // parameters, as a PyTorch nn.ModuleList of the Linear layers would name them.
  size_t offset = 0;
  size_t param_layer = 0;
  // Note [PyTorch layout]: an image flattened here is (h, w, c) in order, in PyTorch (c, h, w):
  // the weight of the first Dense layer that reads it takes its inputs in that other order.
  Shape shape = input_;
  std::optional<Shape> flattened_image;
  size_t buffer_offset = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    for (const ParamSpec& spec : layers_[i]->buffer_specs()) {
      const auto count = static_cast<size_t>(spec.shape.numel());
      buffer_entries_.push_back({i, "layers." + std::to_string(param_layer) + "." + spec.name,
                                 spec.shape, buffer_offset, count, spec.hwc});
      buffer_offset += count;
    }
    // Note [frozen layers]: a frozen layer's parameters follow its buffers, as buffers.
    const bool frozen = layers_[i]->frozen();
    const std::vector<ParamSpec> specs = layers_[i]->param_specs();
    for (const ParamSpec& unpenalized : specs) {
      const ParamSpec spec = layers_[i]->penalized(unpenalized);
      const auto count = static_cast<size_t>(spec.shape.numel());
      size_t& at = frozen ? buffer_offset : offset;
      ParamEntry entry{i,          "layers." + std::to_string(param_layer) + "." + spec.name,
                       spec.shape, at,
                       count,      spec.hwc,
                       spec.l1,    spec.l2};
      entry.frozen = frozen;
      if (flattened_image && spec.shape.rank() == 2 && spec.shape[1] == flattened_image->numel())
        entry.hwc = {spec.shape[0], (*flattened_image)[0], (*flattened_image)[1],
                     (*flattened_image)[2]};
      (frozen ? buffer_entries_ : entries_).push_back(std::move(entry));
      at += count;
    }
    if (!specs.empty()) {
      ++param_layer;
      flattened_image.reset();
    }
    const Shape out = layers_[i]->output_shape();
    if (layers_[i]->aliases_input() && shape.rank() == 3 && out.rank() == 1)
      flattened_image = shape;
    shape = out;
  }
  layer_offsets_.assign(layers_.size(), kNoParams);
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
    layer_offsets_[it->layer] = it->offset;
  own_params_ = DeviceBuffer(backend_, offset);
  params_ = own_params_.span();
  buffers_ = DeviceBuffer(backend_, buffer_offset);
  bind_layers();
}

size_t Sequential::lowest_trained_layer() const {
  size_t lowest = layers_.size();
  for (const ParamEntry& e : entries_) lowest = std::min(lowest, e.layer);
  return lowest;
}

void Sequential::bind_layers() {
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::vector<float*> p, g, b;
    for (const ParamEntry& e : entries_) {
      if (e.layer != i) continue;
      p.push_back(params_.data() + e.offset);
      g.push_back(grads_.empty() ? nullptr : grads_.data() + e.offset);
    }
    for (const ParamEntry& e : buffer_entries_) {
      if (e.layer != i) continue;
      if (!e.frozen) {
        b.push_back(buffers_.data() + e.offset);
        continue;
      }
      p.push_back(buffers_.data() + e.offset);
      g.push_back(discarded_grads_.size() > 0 ? discarded_grads_.data() + e.offset : nullptr);
    }
    layers_[i]->bind(p, g);
    layers_[i]->bind_buffers(b);
  }
}

void Sequential::bind_grads(std::span<float> storage) {
  if (storage.size() != param_count())
    throw std::logic_error("bind_grads: " + std::to_string(storage.size()) + " floats for " +
                           std::to_string(param_count()) + " parameters");
  grads_ = storage;
  // Note [frozen layers]: only a frozen layer above a trained one runs backward.
  const size_t lowest = lowest_trained_layer();
  const bool discarding =
      std::any_of(buffer_entries_.begin(), buffer_entries_.end(),
                  [&](const ParamEntry& e) { return e.frozen && e.layer > lowest; });
  if (discarding && discarded_grads_.size() == 0)
    discarded_grads_ = DeviceBuffer(backend_, buffers_.size());
  bind_layers();
}

void Sequential::bind_params(std::span<float> storage) {
  if (storage.size() != param_count())
    throw std::logic_error("bind_params: " + std::to_string(storage.size()) + " floats for " +
                           std::to_string(param_count()) + " parameters");
  std::vector<float> values(params_.size());  // once per model: through the host will do
  backend_.copy_to_host(params_.data(), values.data(), values.size());
  backend_.copy_to_device(values.data(), storage.data(), values.size());
  params_ = storage;
  own_params_ = DeviceBuffer();
  bind_layers();
}

void Sequential::set_output_logits(OutputFunction fused) {
  output_logits_ = fused != OutputFunction::kNone && layers_.back()->output_function() == fused;
}

void Sequential::set_pass(const Pass& pass) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    Pass own = pass;
    own.key = counter_hash(pass.key, i);
    // A frozen layer has nothing to update (Note [frozen layers]).
    if (layers_[i]->frozen()) own.update_in_backward = nullptr;
    layers_[i]->set_pass(own);
  }
}

int64_t Sequential::output_cols() const { return layers_.back()->output_shape().numel(); }

void Sequential::reserve(int64_t max_batch) {
  if (max_batch <= max_batch_) return;
  max_batch_ = max_batch;
  outputs_.clear();
  size_t largest = 0;
  for (const auto& layer : layers_) {
    const auto count = static_cast<size_t>(max_batch * layer->output_shape().numel());
    outputs_.emplace_back(layer->aliases_input() ? DeviceBuffer() : DeviceBuffer(backend_, count));
    largest = std::max(largest, count);
  }
  grad_a_ = DeviceBuffer(backend_, largest);
  grad_b_ = DeviceBuffer(backend_, largest);
  inputs_.assign(layers_.size(), nullptr);
  results_.assign(layers_.size(), nullptr);
}

const float* Sequential::run(const float* x, int64_t batch, size_t layer_count) {
  if (batch > max_batch_) reserve(batch);
  const float* current = x;
  const float* mask = nullptr;  // Note [padding masks]
  for (size_t i = 0; i < layer_count; ++i) {
    inputs_[i] = current;
    layers_[i]->set_input_mask(mask);
    if (!layers_[i]->aliases_input()) {
      layers_[i]->forward(backend_, current, outputs_[i].data(), batch);
      current = outputs_[i].data();
    }
    mask = layers_[i]->output_mask();
    results_[i] = current;
  }
  output_mask_ = mask;
  return current;
}

const float* Sequential::forward(const float* x, int64_t batch) {
  return run(x, batch, trained_layers());
}

const float* Sequential::predict(const float* x, int64_t batch) {
  return run(x, batch, layers_.size());
}

void Sequential::backward(int64_t batch, const std::function<void(size_t)>& on_ready,
                          bool accumulate) {
  if (grads_.empty() && param_count() > 0)
    throw std::logic_error("Sequential::backward before bind_grads()");
  // The first layer that needs its input gradient is the one after the lowest trained one.
  const size_t first_param_layer = lowest_trained_layer();
  if (first_param_layer == layers_.size()) return;  // nothing trained, nothing to compute
  float* dy = grad_a_.data();
  for (size_t i = trained_layers(); i-- > 0;) {
    if (layers_[i]->aliases_input()) continue;
    float* dx = nullptr;
    if (i > first_param_layer) dx = dy == grad_a_.data() ? grad_b_.data() : grad_a_.data();
    layers_[i]->backward(backend_, inputs_[i], results_[i], dy, dx, batch, accumulate);
    if (on_ready && layer_offsets_[i] != kNoParams) on_ready(layer_offsets_[i]);
    if (!dx) break;
    dy = dx;
  }
}

void Sequential::join_without_rows(const std::function<void(size_t)>& on_ready,
                                   const std::function<void()>& after_forward) {
  for (size_t i = 0; i < trained_layers(); ++i) layers_[i]->forward_without_rows(backend_);
  if (after_forward) after_forward();
  for (size_t i = trained_layers(); i-- > 0;) {
    layers_[i]->backward_without_rows(backend_);
    if (on_ready && layer_offsets_[i] != kNoParams) on_ready(layer_offsets_[i]);
  }
}

namespace {
// Host views of one layer's tensors in a flat host copy: its parameters (`frozen` or not,
// Note [frozen layers]) or its buffers.
std::vector<std::span<float>> layer_views(std::vector<float>& host,
                                          const std::vector<ParamEntry>& entries, size_t layer,
                                          bool frozen) {
  std::vector<std::span<float>> views;
  for (const ParamEntry& e : entries)
    if (e.layer == layer && e.frozen == frozen) views.emplace_back(host.data() + e.offset, e.count);
  return views;
}
}  // namespace

void Sequential::init_params(uint64_t seed) {
  std::vector<float> host(params_.size());
  std::vector<float> buffers(buffers_.size());
  Rng rng(derive_seed(seed, /*stream=*/1));
  for (size_t i = 0; i < layers_.size(); ++i) {
    const bool frozen = layers_[i]->frozen();
    layers_[i]->init_params(rng, frozen ? layer_views(buffers, buffer_entries_, i, true)
                                        : layer_views(host, entries_, i, false));
    layers_[i]->init_buffers(layer_views(buffers, buffer_entries_, i, false));
  }
  backend_.copy_to_device(host.data(), params_.data(), host.size());
  backend_.copy_to_device(buffers.data(), buffers_.data(), buffers.size());
}

namespace {
// A summary row: the layer (its parameters' prefix and type; a block's layers indented), its
// output shape and its parameter count.
struct Row {
  std::string layer, shape, count;
};

std::string with_commas(uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string batch_shape(const Shape& shape) { return "(None, " + shape.str().substr(1); }

// Note [residual blocks]: a block's layers under its row, indented, named by their parameters'
// prefix where they have parameters.
void add_part_rows(std::vector<Row>& rows, const Layer& layer, const std::string& name,
                   const std::string& indent) {
  for (const auto& [prefix, part] : layer.parts()) {
    int64_t count = 0;
    for (const std::vector<ParamSpec>& specs : {part->param_specs(), part->buffer_specs()})
      for (const ParamSpec& spec : specs) count += spec.shape.numel();
    const std::string own = name + prefix.substr(0, prefix.size() - 1);  // "layers.3.layers.0"
    rows.push_back({indent + (count > 0 ? own + " " : "") + "(" + part->describe() + ")",
                    batch_shape(part->output_shape()), with_commas(static_cast<uint64_t>(count))});
    add_part_rows(rows, *part, own + ".", indent + "  ");
  }
}
}  // namespace

std::string Sequential::summary() const {
  std::vector<Row> rows = {{"input (Input)", batch_shape(input_), "0"}};
  for (size_t i = 0; i < layers_.size(); ++i) {
    size_t count = 0;
    std::string prefix;
    for (const auto* entries : {&entries_, &buffer_entries_})
      for (const ParamEntry& e : *entries) {
        if (e.layer != i) continue;
        count += e.count;
        prefix = e.name.substr(0, e.name.find('.', e.name.find('.') + 1)) + " ";  // layers.<k>
      }
    rows.push_back(
        {prefix + "(" + layers_[i]->describe() + (layers_[i]->frozen() ? ", frozen)" : ")"),
         batch_shape(layers_[i]->output_shape()), with_commas(count)});
    add_part_rows(rows, *layers_[i],
                  prefix.empty() ? "" : prefix.substr(0, prefix.size() - 1) + ".", "  ");
  }
  // Keras' columns, the first as wide as the longest name (a deep block's) where that is wider.
  size_t width = 40;
  for (const Row& row : rows) width = std::max(width, row.layer.size());
  const auto format = [width](const Row& row) {
    std::string line = " " + row.layer + std::string(width - row.layer.size(), ' ') + " " +
                       row.shape +
                       std::string(row.shape.size() < 24 ? 24 - row.shape.size() : 0, ' ');
    return line + " " + std::string(row.count.size() < 12 ? 12 - row.count.size() : 0, ' ') +
           row.count + "\n";
  };
  const std::string rule(80 + width - 40, '-');
  std::string out = "Model: sequential\n" + rule + "\n" +
                    format({"Layer (type)", "Output Shape", "Param #"}) + rule + "\n";
  for (const Row& row : rows) out += format(row);
  char line[160];
  out += rule + "\n";
  // As Keras counts them: trainable parameters plus the non-trainable running statistics and
  // frozen layers' parameters.
  const size_t total = params_.size() + buffers_.size();
  std::snprintf(line, sizeof line, " Total params: %s (%.2f KB)", with_commas(total).c_str(),
                static_cast<double>(total) * 4 / 1024.0);
  out += line;
  if (buffers_.size() > 0) {
    bool frozen = false, statistics = false;
    for (const ParamEntry& e : buffer_entries_) (e.frozen ? frozen : statistics) = true;
    const char* what = !frozen      ? "running statistics"
                       : statistics ? "frozen layers, running statistics"
                                    : "frozen layers";
    std::snprintf(line, sizeof line, ": %s trainable, %s non-trainable (%s)",
                  with_commas(params_.size()).c_str(), with_commas(buffers_.size()).c_str(), what);
    out += line;
  }
  std::snprintf(line, sizeof line, ", flat buffer of %zu floats\n", params_.size());
  out += line;
  return out;
}

}  // namespace ddp
