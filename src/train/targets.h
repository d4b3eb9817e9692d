#pragma once
// How a dataset's labels become a batch's targets under the configured loss, and the checks that
// the data, the loss and the metrics go together.
//
// Note [class weights]: Keras' fit(class_weight) (`loss.class_weight`): each training sample's
// loss is multiplied by its class's weight and a batch's loss is still the sum over its samples
// over the batch size (Keras' sum_over_batch_size; PyTorch's CrossEntropyLoss(weight) divides by
// the sum of the weights instead). The weights go into the targets: a training sample's one-hot
// (or smoothed) row is multiplied by its class's weight, which the categorical cross-entropy's
// general form (loss sum_c t_c (log sum exp z - z_c), gradient p sum_c t_c - t) turns into exactly
// the weighted loss and gradient, on every backend. So the sparse loss trains as the categorical
// one when classes are weighted. Evaluation (val_ values, evaluate()) and the metrics are
// unweighted, as in Keras.

#include <cstdint>
#include <optional>
#include <vector>

#include "data/dataset.h"
#include "nn/loss.h"
#include "train/config.h"

namespace ddp {

// The targets' layout for `train` (and `test`, which must be of the same kind) under `loss` with
// `outputs` model outputs. Throws ConfigError naming the loss or a metric that does not go with
// real-valued targets, DataError where the labels do not fit the outputs.
TargetLayout choose_target_layout(const Config& config, const Loss& loss, const Dataset& train,
                                  const std::optional<Dataset>& test, int64_t outputs);
// The loss the trainer computes: the configured one, or the categorical cross-entropy for a sparse
// one with class weights (Note [class weights]).
LossKind trained_loss(const Config& config);
// Note [class weights]: a weight per output (1 where none was given), or empty when no class is
// weighted. Throws ConfigError naming loss.class_weight for a class that is not an output.
std::vector<float> class_weights(const Config& config, int64_t outputs);

}  // namespace ddp
