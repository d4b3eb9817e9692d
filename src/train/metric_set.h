#pragma once
// Keras-style metrics, chosen in the config (`metrics: [accuracy]`).
//
// Note [exact metrics]: every metric is a function of sums over samples: correct predictions,
// absolute errors, true and false positives and false negatives per output, counts of labels per
// threshold bin (AUC). The sums add up over batches and then over ranks before any division, so a
// metric over N ranks is the one a single rank computes over the whole set, however the samples
// are split (never an average of averages).
//
// Note [AUC]: Keras' AUC() as it is by default: the ROC curve at 200 thresholds (-1e-7, i / 199
// for i in 1..198, 1 + 1e-7, as float32, a prediction counting as positive above one), its area by
// interpolation (the trapezoids between neighbouring thresholds), over every label of every sample
// together (not multi_label). A label's probability is the sigmoid of its logit, compared in
// float32 as Keras compares its probabilities. Its sums are how many positive and how many
// negative labels exceed exactly k of the thresholds (k = 0..200), which give every threshold's
// true and false positives.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "nn/loss.h"

namespace ddp {

struct MetricValue {
  std::string name;
  double value;
};

// Every metric name, in the order the config reference lists them; Keras' longer names last.
const std::vector<std::string>& metric_names();
// What a metric computes: Keras' longer names are other names of ddp-trainer's metrics
// (sparse_categorical_accuracy and categorical_accuracy: accuracy; mean_absolute_error: mae),
// reported under the name given.
std::string metric_kind(const std::string& name);
// The metrics of a config without `metrics`: accuracy, binary_accuracy for binary_crossentropy,
// mae for mean_squared_error.
std::vector<std::string> default_metrics(LossKind loss);
// Why `name` does not go with `loss` ("" when it does).
std::string metric_mismatch(const std::string& name, LossKind loss);

class MetricSet {
 public:
  // `outputs`: the model's outputs per sample (logits when the loss takes them), in `positions`
  // rows of classes (Note [targets per position]: precision, recall and F1 count each position
  // as a row of its own, and leave out those whose target is ignored, Note [masked positions]).
  MetricSet(std::vector<std::string> names, LossKind loss, int64_t outputs, int64_t positions = 1);

  // Doubles of sums: correct, samples, then what the chosen metrics need.
  size_t sum_count() const { return sum_count_; }
  // Whether add() reads the outputs and targets (precision, recall, F1, MAE, AUC); otherwise the
  // loss's own count of correct predictions is enough.
  bool needs_outputs() const { return per_output_ || absolute_error_ || auc_; }
  // Adds one batch of `rows` samples to `sums`: `stats` from the loss, and, when needs_outputs(),
  // host copies of the outputs (rows, outputs) and targets (rows, positions) or (rows, outputs),
  // a target below zero (kIgnoredTarget; a one-hot row's first element) not counted. `samples`:
  // what the batch counts as, when not its rows (its real positions, Note [masked positions]).
  void add(std::span<double> sums, const LossStats& stats, const float* outputs,
           const float* targets, int64_t rows, std::optional<double> samples = std::nullopt) const;
  std::vector<MetricValue> values(std::span<const double> sums) const;
  static constexpr size_t kSamples = 1;  // where sums hold the sample count
  // Lower is better (mae); higher for the others.
  static bool lower_is_better(const std::string& name) { return metric_kind(name) == "mae"; }

 private:
  size_t auc_offset() const;  // where AUC's bins begin in the sums
  std::vector<std::string> names_;
  LossKind loss_;
  int64_t outputs_;              // per position
  int64_t positions_;            // per sample
  bool absolute_error_ = false;  // mae
  bool per_output_ = false;      // precision, recall, F1: true/false positives per output
  bool auc_ = false;             // Note [AUC]
  size_t sum_count_ = 2;
};

}  // namespace ddp
