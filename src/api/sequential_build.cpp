// Sequential's model without training: Keras' build(), which makes the model and its weights
// for predict and the weights calls before any fit, and the shapes and counts of summary() and
// count_params() before a fit.

#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "api/keras.h"
#include "backend/backend.h"
#include "core/error.h"
#include "nn/model_builder.h"
#include "train/config.h"
#include "train/session.h"

namespace ddp::keras {
namespace {

// What `use` makes of the model `model_node` describes, built on this rank's CPU and never
// trained: shapes and counts only (and the caller's floating-point mode left as it is). Before a
// fit that needs the input shape; `call` names the caller in the error.
template <class Use>
auto with_unfitted_model(const YAML::Node& model_node, const char* call, Use&& use) {
  YAML::Node root(YAML::NodeType::Map);
  root["model"] = model_node;
  const Config config = parse_model_config(root, kSequentialOrigin);
  if (!config.input_shape)
    throw ConfigError(std::string(kSequentialOrigin) + ": " + call +
                      "() before fit() needs the input shape: Sequential(layers, input_shape), "
                      "or call it after fit()");
  const std::unique_ptr<ComputeBackend> cpu = make_cpu_backend(/*flush_denormals=*/false);
  return use(*build_sequential(*cpu, Shape(*config.input_shape), config.layers));
}

}  // namespace

std::string Sequential::summary() const {
  if (session_) return session_->trainer->model().summary();
  return with_unfitted_model(model_, "summary",
                             [](const ddp::Sequential& m) { return m.summary(); });
}

int64_t Sequential::count_params() const {
  const auto all = [](const ddp::Sequential& m) {
    return static_cast<int64_t>(m.param_count() + m.buffer_count());
  };
  if (session_) return all(session_->trainer->model());
  return with_unfitted_model(model_, "count_params", all);
}

std::vector<int64_t> Sequential::input_shape() const {
  if (session_) return session_->trainer->model().input_shape().dims();
  return model_["input"] ? model_["input"].as<std::vector<int64_t>>() : std::vector<int64_t>{};
}

std::vector<int64_t> Sequential::output_shape() const {
  const auto shape = [](const ddp::Sequential& m) {
    return m.layers().back()->output_shape().dims();
  };
  if (session_) return shape(session_->trainer->model());
  return with_unfitted_model(model_, "output_shape", shape);
}

void Sequential::build(Runtime& runtime, std::optional<int64_t> labels_per_sample) {
  if (session_ && !compiled_since_fit_) return;
  const auto described = [](const ddp::Sequential& m) {
    return std::tuple(m.input_shape().dims(), m.layers().back()->output_shape(),
                      !m.output_mask_origin().empty());
  };
  const auto [sample_shape, output, masked_output] =
      session_ ? described(session_->trainer->model())
               : with_unfitted_model(model_, "build", described);
  const int64_t outputs = output.numel();
  // A session over one all-zero sample per rank, which nothing trains on: its config is the
  // compiled one, or (uncompiled, as Keras builds models) SGD and mean squared error, which only
  // predict and the weights calls use; evaluate() and fit() need compile() then. A model whose
  // output keeps a padding mask takes a class per step instead (Note [masked positions]).
  const bool was_compiled = compiled();
  const auto uncompile = [this](Sequential*) {
    // reset(), not =, which would bind the three to one node (yaml-cpp's = rebinds).
    optimizer_.reset();
    loss_.reset();
    metrics_.reset();
    compiled_since_fit_ = true;  // the next fit starts the optimizer compile() gives
  };
  std::unique_ptr<Sequential, decltype(uncompile)> placeholder(was_compiled ? nullptr : this,
                                                               uncompile);
  if (!was_compiled) {
    optimizer_.reset(SGD().node);
    loss_.reset(
        YAML::Node(masked_output ? "sparse_categorical_crossentropy" : "mean_squared_error"));
    metrics_.reset(YAML::Node(YAML::NodeType::Sequence));
  }
  const int64_t ranks = runtime.size();
  Arrays zeros;
  zeros.sample_shape = sample_shape;
  zeros.features.assign(static_cast<size_t>(ranks * Shape(sample_shape).numel()), 0.0f);
  const std::string loss =
      loss_.IsMap() ? loss_["type"].as<std::string>() : loss_.as<std::string>();
  if (loss == "mean_squared_error")
    zeros.targets.assign(static_cast<size_t>(ranks * outputs), 0.0f);
  else  // a 0/1 label per output, or a class index per sample or per step of the output's
        // (Note [targets per position]), unless the evaluated data say otherwise
    zeros.labels.assign(
        static_cast<size_t>(
            ranks * labels_per_sample.value_or(loss == "binary_crossentropy" ? outputs
                                               : loss == "sparse_categorical_crossentropy" ||
                                                       loss == "categorical_crossentropy"
                                                   ? outputs / output[output.rank() - 1]
                                                   : 1)),
        0);
  const FitOptions options{.batch_size = ranks, .verbose = false};
  run(runtime, config(options), true, &zeros, nullptr, options, /*train_it=*/false);
}

}  // namespace ddp::keras
