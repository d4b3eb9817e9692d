#pragma once
// How a dataset's labels become a batch's targets under the configured loss, and the checks that
// the data, the loss and the metrics go together.
//
// Note [class weights]: Keras' fit(class_weight) (`loss.class_weight`): each training sample's
// loss is multiplied by its class's weight and a batch's loss is still the sum over its samples
// over the batch size (Keras' sum_over_batch_size; PyTorch's CrossEntropyLoss(weight) divides by
// the sum of the weights instead, and with label smoothing weighs each class's term rather than
// the sample). A sample's class is its label: the class index of the categorical cross-entropies
// and of mean_squared_error on class labels, or the one 0/1 label of binary_crossentropy with one
// output (Keras' binary class_weight); several labels per sample or real-valued targets have no
// class to weigh. The weights reach the loss as the training batch's row weights (Note [sample
// weights], whose weights they multiply). Evaluation (val_ values, evaluate()) and the metrics
// are not weighted by class, as in Keras.

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
// Note [class weights]: a weight per class (1 where none was given) for `train` laid out as
// `layout` for a model of `outputs` outputs, or empty when no class is weighted. Throws
// ConfigError naming loss.class_weight for a class the labels cannot hold or data without classes.
std::vector<float> class_weights(const Config& config, TargetLayout layout, const Dataset& train,
                                 int64_t outputs);

}  // namespace ddp
