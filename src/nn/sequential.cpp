#include "nn/sequential.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "core/counter_hash.h"
#include "core/error.h"

namespace ddp {

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
  for (size_t i = 0; i < layers_.size(); ++i) {
    size_t buffer_offset = 0;
    for (const ParamEntry& e : buffer_entries_) buffer_offset = e.offset + e.count;
    for (const ParamSpec& spec : layers_[i]->buffer_specs()) {
      const auto count = static_cast<size_t>(spec.shape.numel());
      buffer_entries_.push_back({i, "layers." + std::to_string(param_layer) + "." + spec.name,
                                 spec.shape, buffer_offset, count, spec.hwc});
      buffer_offset += count;
    }
    const std::vector<ParamSpec> specs = layers_[i]->param_specs();
    for (const ParamSpec& spec : specs) {
      const auto count = static_cast<size_t>(spec.shape.numel());
      ParamEntry entry{i,          "layers." + std::to_string(param_layer) + "." + spec.name,
                       spec.shape, offset,
                       count,      spec.hwc};
      if (flattened_image && spec.shape.rank() == 2 && spec.shape[1] == flattened_image->numel())
        entry.hwc = {spec.shape[0], (*flattened_image)[0], (*flattened_image)[1],
                     (*flattened_image)[2]};
      entries_.push_back(std::move(entry));
      offset += count;
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
  size_t buffer_count = 0;
  for (const ParamEntry& e : buffer_entries_) buffer_count += e.count;
  buffers_ = DeviceBuffer(backend_, buffer_count);
  bind_layers();
}

void Sequential::bind_layers() {
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::vector<float*> p, g;
    for (const ParamEntry& e : entries_) {
      if (e.layer != i) continue;
      p.push_back(params_.data() + e.offset);
      g.push_back(grads_.empty() ? nullptr : grads_.data() + e.offset);
    }
    layers_[i]->bind(p, g);
    std::vector<float*> b;
    for (const ParamEntry& e : buffer_entries_)
      if (e.layer == i) b.push_back(buffers_.data() + e.offset);
    layers_[i]->bind_buffers(b);
  }
}

void Sequential::bind_grads(std::span<float> storage) {
  if (storage.size() != param_count())
    throw std::logic_error("bind_grads: " + std::to_string(storage.size()) + " floats for " +
                           std::to_string(param_count()) + " parameters");
  grads_ = storage;
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

void Sequential::set_weight_penalty(size_t layer, float l1, float l2) {
  for (ParamEntry& e : entries_) {
    if (e.layer != layer || e.name.substr(e.name.rfind('.') + 1) != "weight") continue;
    e.l1 = l1;
    e.l2 = l2;
  }
}

void Sequential::set_output_logits(OutputFunction fused) {
  output_logits_ = fused != OutputFunction::kNone && layers_.back()->output_function() == fused;
}

void Sequential::set_pass(const Pass& pass) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    Pass own = pass;
    own.key = counter_hash(pass.key, i);
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
  for (size_t i = 0; i < layer_count; ++i) {
    inputs_[i] = current;
    if (!layers_[i]->aliases_input()) {
      layers_[i]->forward(backend_, current, outputs_[i].data(), batch);
      current = outputs_[i].data();
    }
    results_[i] = current;
  }
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
  // The first layer that needs its input gradient is the one after the first parameterized one.
  size_t first_param_layer = layers_.size();
  for (const ParamEntry& e : entries_) first_param_layer = std::min(first_param_layer, e.layer);
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

void Sequential::join_without_rows(const std::function<void(size_t)>& on_ready) {
  for (size_t i = 0; i < trained_layers(); ++i) layers_[i]->forward_without_rows(backend_);
  for (size_t i = trained_layers(); i-- > 0;) {
    layers_[i]->backward_without_rows(backend_);
    if (on_ready && layer_offsets_[i] != kNoParams) on_ready(layer_offsets_[i]);
  }
}

namespace {
// Host views of one layer's tensors in a flat host copy.
std::vector<std::span<float>> layer_views(std::vector<float>& host,
                                          const std::vector<ParamEntry>& entries, size_t layer) {
  std::vector<std::span<float>> views;
  for (const ParamEntry& e : entries)
    if (e.layer == layer) views.emplace_back(host.data() + e.offset, e.count);
  return views;
}
}  // namespace

void Sequential::init_params(uint64_t seed) {
  std::vector<float> host(params_.size());
  std::vector<float> buffers(buffers_.size());
  Rng rng(derive_seed(seed, /*stream=*/1));
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->init_params(rng, layer_views(host, entries_, i));
    layers_[i]->init_buffers(layer_views(buffers, buffer_entries_, i));
  }
  backend_.copy_to_device(host.data(), params_.data(), host.size());
  backend_.copy_to_device(buffers.data(), buffers_.data(), buffers.size());
}

namespace {
std::string with_commas(uint64_t n) {
  const std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}
}  // namespace

std::string Sequential::summary() const {
  char line[160];
  std::string out = "Model: sequential\n";
  const std::string rule(72, '-');
  out += rule + "\n";
  std::snprintf(line, sizeof line, " %-32s %-24s %12s\n", "Layer (type)", "Output Shape",
                "Param #");
  out += line + rule + "\n";
  std::snprintf(line, sizeof line, " %-32s %-24s %12s\n", "input (Input)",
                ("(None, " + input_.str().substr(1)).c_str(), "0");
  out += line;
  for (size_t i = 0; i < layers_.size(); ++i) {
    size_t count = 0;
    std::string prefix;
    for (const ParamEntry& e : entries_) {
      if (e.layer != i) continue;
      count += e.count;
      prefix = e.name.substr(0, e.name.rfind('.')) + " ";
    }
    for (const ParamEntry& e : buffer_entries_)
      if (e.layer == i) count += e.count;
    const std::string name = prefix + "(" + layers_[i]->describe() + ")";
    const std::string shape = "(None, " + layers_[i]->output_shape().str().substr(1);
    std::snprintf(line, sizeof line, " %-32s %-24s %12s\n", name.c_str(), shape.c_str(),
                  with_commas(count).c_str());
    out += line;
  }
  out += rule + "\n";
  // As Keras counts them: trainable parameters plus the non-trainable running statistics.
  const size_t total = params_.size() + buffers_.size();
  std::snprintf(line, sizeof line, " Total params: %s (%.2f KB)", with_commas(total).c_str(),
                static_cast<double>(total) * 4 / 1024.0);
  out += line;
  if (buffers_.size() > 0) {
    std::snprintf(line, sizeof line, ": %s trainable, %s non-trainable (running statistics)",
                  with_commas(params_.size()).c_str(), with_commas(buffers_.size()).c_str());
    out += line;
  }
  std::snprintf(line, sizeof line, ", flat buffer of %zu floats\n", params_.size());
  out += line;
  return out;
}

}  // namespace ddp
