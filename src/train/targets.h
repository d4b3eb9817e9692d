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

//
// Note [targets per position]: sparse_categorical_crossentropy on a model whose output keeps
// several axes, (steps, classes) or (height, width, classes), takes a class index per position
// (a tag per token): labels (samples, steps), as Keras takes y (batch, steps) for an output
// (batch, steps, classes). Each position is a row of the loss, its softmax over the last axis;
// the batch's loss is the mean over all its positions (Keras' sum_over_batch_size, PyTorch's
// CrossEntropyLoss over (batch * steps, classes)), and so is its gradient, scaled by 1 / (global
// batch x positions) so that N ranks still train what one does; accuracy counts positions; a
// sample's weight weighs each of its positions. The loss's sums are kept per sample (a sample's
// mean over its positions), so that epoch means, penalties and metrics over ranks stay what they
// were. Precision, recall and F1 (micro and macro) count each position as a row of its own, a
// class per row, as over samples (MetricSet); class weights are refused with such targets.
// categorical_crossentropy takes the same labels, each position's class one-hot (a row of the
// last axis's classes, smoothed over them), or one-hot rows given for every position.
//
// Note [masked positions]: where a padding mask reaches the model's output (an embedding with
// mask_zero or a masking layer, through layers that pass it on: Note [padding masks]), a class per
// step counts the real steps only, as Keras' loss and metrics do with the mask (and PyTorch's
// CrossEntropyLoss with ignore_index at the padding): after forward, each padding step's target is
// marked ignored (kIgnoredTarget, a one-hot row's first element for categorical_crossentropy: no
// loss, no gradient, counted by no metric), the ranks add up
// their real steps (a collective of one number; a rank without rows joins it with 0), and the
// gradient is scaled by 1 / the global batch's real steps, so the step is the mean over them
// however they fall on the ranks. A sample's weight weighs its real steps, over their unweighted
// count (Keras' sum(loss * weight * mask) / sum(mask)). The loss and accuracy of an epoch, of
// validation and of evaluate() are means over every real step of the set (Keras' evaluate over
// one batch of it; its smaller batches average batch means instead). With micro-batches
// accumulated, each one's count is added up over the ranks after its forward and the gradients of
// the ones before it are rescaled from the mean over their count to the mean over the new total
// before its backward (Trainer::accumulated_count), so the step is still the mean over all its
// counted targets. A loss other than the categorical cross-entropies is refused with a mask at the
// output.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "nn/loss.h"
#include "train/config.h"

namespace ddp {

// The targets' layout for `train` (and `test`, which must be of the same kind) under `loss` with
// `outputs` model outputs. Throws ConfigError naming the loss or a metric that does not go with
// real-valued targets, DataError where the labels do not fit the outputs.
TargetLayout choose_target_layout(const Config& config, const Loss& loss, const Dataset& train,
                                  const std::optional<Dataset>& test, int64_t outputs,
                                  int64_t positions);
// Note [targets per position]: the loss's rows per sample for a model whose output is `output` a
// sample: its positions for the softmax losses, 1 otherwise. Throws ConfigError naming
// `output_mask_origin` (the layer whose padding mask reaches the output; "" for none) where the
// loss does not take a class per position.
int64_t target_positions(const Loss& loss, const Shape& output,
                         const std::string& output_mask_origin);
// Note [masked positions]: whether the loss counts only some of its targets (a padding mask
// reaches the model's output from `output_mask_origin`, or loss.ignore_class leaves labels out).
// Throws ConfigError naming loss.class_weight, which does not go with that.
bool counts_targets(const Config& config, const std::string& output_mask_origin);
// Note [class weights]: a weight per class (1 where none was given) for `train` laid out as
// `layout` for a model of `outputs` outputs, or empty when no class is weighted. Throws
// ConfigError naming loss.class_weight for a class the labels cannot hold or data without classes.
std::vector<float> class_weights(const Config& config, TargetLayout layout, const Dataset& train,
                                 int64_t outputs);

}  // namespace ddp
