#pragma once
// Models from a layers list written as in a config, for the layers' tests: the parsed config, the
// model built from it, or the one-line ConfigError either refuses it with.

#include <memory>
#include <string>

#include "core/error.h"
#include "finite_differences.h"
#include "nn/model_builder.h"
#include "train/config.h"

namespace ddp {

inline Config model_config(const Shape& input, const std::string& layers) {
  std::string dims;
  for (const int64_t d : input.dims()) dims += (dims.empty() ? "" : ", ") + std::to_string(d);
  return parse_model_config(
      YAML::Load("{model: {input: [" + dims + "], layers: [" + layers + "]}}"), "c.yaml");
}

inline std::unique_ptr<Sequential> build(ComputeBackend& backend, const Shape& input,
                                         const std::string& layers) {
  return build_sequential(backend, input, model_config(input, layers).layers);
}

inline std::string build_error(const Shape& input, const std::string& layers) {
  try {
    auto backend = make_cpu_backend();
    build(*backend, input, layers);
    return "";
  } catch (const ConfigError& e) {
    return e.what();
  }
}

// Finite differences through the model of `layers`, whose last one is a dense softmax (fused into
// the loss), on three samples of uniform [0, 1) features labelled 2, 0, 1.
inline void expect_softmax_model_gradient_matches(const Shape& input, const std::string& layers) {
  auto backend = make_cpu_backend();
  auto model = build(*backend, input, layers);
  model->set_output_logits(OutputFunction::kSoftmax);
  model->init_params(7);
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  expect_model_gradient_matches(
      *backend, *model, random_vector(static_cast<size_t>(3 * input.numel()), 9, 0, 1), {2, 0, 1});
}

}  // namespace ddp
