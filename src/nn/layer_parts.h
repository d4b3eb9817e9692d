#pragma once
// The parameters of a layer made of other layers (a transformer block's attention, feed-forward
// and normalization layers): each part's under its prefix, in the parts' order, as a PyTorch
// module names its submodules' tensors ("self_attn.out_proj.weight"). The parts take no
// update during backward (Note [update in backward]): their gradients go to the flat buffer and
// the optimizer steps them after backward, as any layer's that cannot hand them over.

#include <string>
#include <utility>
#include <vector>

#include "core/counter_hash.h"
#include "nn/layer.h"

namespace ddp {

class LayerParts {
 public:
  void add(std::string prefix, Layer& part) { parts_.emplace_back(std::move(prefix), &part); }
  std::vector<std::pair<std::string, const Layer*>> all() const {
    return {parts_.begin(), parts_.end()};
  }

  std::vector<ParamSpec> param_specs() const { return named(&Layer::param_specs); }
  void bind(std::span<float* const> params, std::span<float* const> grads) const {
    size_t at = 0;
    for (const auto& [prefix, part] : parts_) {
      const size_t count = part->param_specs().size();
      part->bind(params.subspan(at, count), grads.subspan(at, count));
      at += count;
    }
  }
  void init_params(Rng& rng, std::span<const std::span<float>> params) const {
    for_shares(params, &Layer::param_specs,
               [&rng](Layer& part, auto share) { part.init_params(rng, share); });
  }
  // Each part's state kept but not trained (BatchNorm's running statistics), as its parameters.
  std::vector<ParamSpec> buffer_specs() const { return named(&Layer::buffer_specs); }
  void bind_buffers(std::span<float* const> buffers) const {
    for_shares(buffers, &Layer::buffer_specs,
               [](Layer& part, auto share) { part.bind_buffers(share); });
  }
  void init_buffers(std::span<const std::span<float>> buffers) const {
    for_shares(buffers, &Layer::buffer_specs,
               [](Layer& part, auto share) { part.init_buffers(share); });
  }
  // Each part's dropout masks its own (Note [dropout mask]): part i's key is the layer's hashed
  // with i, as the model derives its layers' keys.
  void set_pass(const Pass& pass) const {
    for (size_t i = 0; i < parts_.size(); ++i) {
      Pass own = pass;
      own.key = counter_hash(pass.key, i);
      own.update_in_backward = nullptr;
      parts_[i].second->set_pass(own);
    }
  }

 private:
  using Specs = std::vector<ParamSpec> (Layer::*)() const;
  // Every part's `specs`, each named under its part's prefix.
  std::vector<ParamSpec> named(Specs specs) const {
    std::vector<ParamSpec> all;
    for (const auto& [prefix, part] : parts_)
      for (ParamSpec spec : (part->*specs)()) {
        spec = part->penalized(std::move(spec));
        spec.name = prefix + spec.name;
        all.push_back(std::move(spec));
      }
    return all;
  }
  // fn(part, its entries of `all`), `all` holding one entry per spec of every part in turn.
  template <typename T, typename Fn>
  void for_shares(std::span<T> all, Specs specs, Fn fn) const {
    size_t at = 0;
    for (const auto& [prefix, part] : parts_) {
      const size_t count = (part->*specs)().size();
      fn(*part, all.subspan(at, count));
      at += count;
    }
  }

  std::vector<std::pair<std::string, Layer*>> parts_;
};

}  // namespace ddp
