#include "train/targets.h"

#include <string>

#include "core/error.h"
#include "train/metric_set.h"

namespace ddp {

int64_t target_positions(const Loss& loss, const Shape& output,
                         const std::string& output_mask_origin) {
  const bool per_position = output.rank() >= 2 && loss.fused_output() == OutputFunction::kSoftmax;
  if (!output_mask_origin.empty() && !per_position)
    throw ConfigError(output_mask_origin +
                      ": its padding mask reaches the model's output; end it with a recurrent "
                      "layer without return_sequences, or global_average_pooling1d, or take a "
                      "class per step (a categorical cross-entropy)");
  if (output.rank() < 2 || loss.fused_output() != OutputFunction::kSoftmax) return 1;
  return output.numel() / output[output.rank() - 1];
}

bool counts_targets(const Config& config, const std::string& output_mask_origin) {
  if (output_mask_origin.empty() && !config.ignore_class) return false;
  const std::string why =
      output_mask_origin.empty()
          ? "loss.ignore_class leaves labels out"
          : "a padding mask reaches the model's output (" + output_mask_origin + ")";
  if (!config.class_weight.empty())
    throw ConfigError(config.file + ": loss.class_weight: " + why +
                      "; weigh samples instead (sample_weights)");
  return true;
}

TargetLayout choose_target_layout(const Config& config, const Loss& loss, const Dataset& train,
                                  const std::optional<Dataset>& test, int64_t outputs,
                                  int64_t positions) {
  if (train.real_valued()) {  // regression: mean_squared_error, and mae its one metric
    if (loss.kind() != LossKind::kMeanSquaredError)
      throw ConfigError(config.file + ": loss: " + train.origin +
                        " holds real-valued targets (regression), which need "
                        "mean_squared_error; class labels must be integers");
    for (const std::string& name : config.metrics)
      if (metric_kind(name) != "mae")
        throw ConfigError(config.file + ": metrics: " + name + " counts classes, but " +
                          train.origin + " holds real-valued targets (regression): use mae");
  }
  // The labels themselves are the targets for several labels per sample, and for one binary
  // label (binary_crossentropy with one output); class indices otherwise, one-hot for dense losses.
  const bool binary = loss.kind() == LossKind::kBinaryCrossentropy;
  const TargetLayout layout =
      train.real_valued()                         ? TargetLayout::kValues
      : loss.target_kind() == TargetKind::kSparse ? TargetLayout::kClassIndex
      // A class index a position made one-hot (categorical_crossentropy, a class per step).
      : positions > 1 && train.label_width == positions   ? TargetLayout::kOneHot
      : train.label_width > 1 || (binary && outputs == 1) ? TargetLayout::kLabels
                                                          : TargetLayout::kOneHot;
  train.check_labels(outputs / positions, layout, binary, positions, config.ignore_class);
  if (test) test->check_labels(outputs / positions, layout, binary, positions, config.ignore_class);
  return layout;
}

std::vector<float> class_weights(const Config& config, TargetLayout layout, const Dataset& train,
                                 int64_t outputs) {
  if (config.class_weight.empty()) return {};
  const std::string key = config.file + ": loss.class_weight: ";
  if (layout == TargetLayout::kValues)
    throw ConfigError(key + train.origin + " holds real-valued targets: no class to weigh");
  if (train.label_width > 1)
    throw ConfigError(key + train.origin + " holds " + std::to_string(train.label_width) +
                      " labels per sample: no one class to weigh (binary_crossentropy weighs " +
                      "its labels' positives: pos_weight)");
  // One binary label (binary_crossentropy, one output): classes 0 and 1.
  const int64_t classes = layout == TargetLayout::kLabels ? 2 : outputs;
  std::vector<float> weights(static_cast<size_t>(classes), 1.0f);
  for (const auto& [c, w] : config.class_weight) {
    if (c >= classes)
      throw ConfigError(
          key + "class " + std::to_string(c) +
          (layout == TargetLayout::kLabels
               ? " is not a label of binary_crossentropy with one output (0 or 1)"
               : " is not an output of a model with " + std::to_string(outputs) + " outputs"));
    weights[static_cast<size_t>(c)] = w;
  }
  return weights;
}

}  // namespace ddp
