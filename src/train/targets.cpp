#include "train/targets.h"

#include <string>

#include "core/error.h"

namespace ddp {

TargetLayout choose_target_layout(const Config& config, const Loss& loss, const Dataset& train,
                                  const std::optional<Dataset>& test, int64_t outputs) {
  if (train.real_valued()) {  // regression: mean_squared_error, and mae its one metric
    if (loss.kind() != LossKind::kMeanSquaredError)
      throw ConfigError(config.file + ": loss: " + train.origin +
                        " holds real-valued targets (regression), which need "
                        "mean_squared_error; class labels must be integers");
    for (const std::string& name : config.metrics)
      if (name != "mae")
        throw ConfigError(config.file + ": metrics: " + name + " counts classes, but " +
                          train.origin + " holds real-valued targets (regression): use mae");
  }
  // The labels themselves are the targets for several labels per sample, and for one binary
  // label (binary_crossentropy with one output); class indices otherwise, one-hot for dense losses.
  const bool binary = loss.kind() == LossKind::kBinaryCrossentropy;
  const TargetLayout layout =
      train.real_valued()                                 ? TargetLayout::kValues
      : loss.target_kind() == TargetKind::kSparse         ? TargetLayout::kClassIndex
      : train.label_width > 1 || (binary && outputs == 1) ? TargetLayout::kLabels
                                                          : TargetLayout::kOneHot;
  train.check_labels(outputs, layout, binary);
  if (test) test->check_labels(outputs, layout, binary);
  return layout;
}

LossKind trained_loss(const Config& config) {
  return config.class_weight.empty() ? config.loss : LossKind::kCategoricalCrossentropy;
}

std::vector<float> class_weights(const Config& config, int64_t outputs) {
  if (config.class_weight.empty()) return {};
  std::vector<float> weights(static_cast<size_t>(outputs), 1.0f);
  for (const auto& [c, w] : config.class_weight) {
    if (c >= outputs)
      throw ConfigError(config.file + ": loss.class_weight: class " + std::to_string(c) +
                        " is not an output of a model with " + std::to_string(outputs) +
                        " outputs");
    weights[static_cast<size_t>(c)] = w;
  }
  return weights;
}

}  // namespace ddp
