#include "train/metric_set.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace ddp {
namespace {

// Sums: [0] correct (rows, or elements for binary_crossentropy), [1] samples, then the absolute
// error when mae is chosen, then true positives, false positives and false negatives per output,
// then AUC's bins of positive labels and of negative ones (Note [AUC]).
constexpr size_t kCorrect = 0;

double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

constexpr size_t kAucThresholds = 200;
constexpr size_t kAucBins = kAucThresholds + 1;  // how many thresholds a prediction exceeds

// Keras' AUC thresholds (Note [AUC]), as float32.
const std::array<float, kAucThresholds>& auc_thresholds() {
  static const std::array<float, kAucThresholds> thresholds = [] {
    std::array<float, kAucThresholds> t{};
    t.front() = static_cast<float>(0.0 - 1e-7);
    for (size_t i = 1; i + 1 < kAucThresholds; ++i)
      t[i] = static_cast<float>(static_cast<double>(i) / (kAucThresholds - 1));
    t.back() = static_cast<float>(1.0 + 1e-7);
    return t;
  }();
  return thresholds;
}

// The area under the ROC curve of the bins' counts, by Keras' interpolation.
double auc_of(const double* positive_bins, const double* negative_bins) {
  // Each threshold's true and false positive rates: the labels that exceed it.
  std::array<double, kAucThresholds> tpr{}, fpr{};
  double positives = 0, negatives = 0;
  for (size_t k = kAucBins; k-- > 1;) {
    positives += positive_bins[k];
    negatives += negative_bins[k];
    tpr[k - 1] = positives;
    fpr[k - 1] = negatives;
  }
  positives += positive_bins[0];
  negatives += negative_bins[0];
  double area = 0;
  for (size_t i = 0; i + 1 < kAucThresholds; ++i)
    area += (ratio(fpr[i], negatives) - ratio(fpr[i + 1], negatives)) *
            (ratio(tpr[i], positives) + ratio(tpr[i + 1], positives)) / 2;
  return area;
}

size_t argmax(const float* row, int64_t n) {
  return static_cast<size_t>(std::max_element(row, row + n) - row);
}

}  // namespace

const std::vector<std::string>& metric_names() {
  static const std::vector<std::string> names = {"accuracy",
                                                 "binary_accuracy",
                                                 "precision",
                                                 "recall",
                                                 "f1",
                                                 "macro_precision",
                                                 "macro_recall",
                                                 "macro_f1",
                                                 "auc",
                                                 "mae",
                                                 "sparse_categorical_accuracy",
                                                 "categorical_accuracy",
                                                 "mean_absolute_error"};
  return names;
}

std::string metric_kind(const std::string& name) {
  if (name == "sparse_categorical_accuracy" || name == "categorical_accuracy") return "accuracy";
  if (name == "mean_absolute_error") return "mae";
  return name;
}

std::vector<std::string> default_metrics(LossKind loss) {
  if (loss == LossKind::kMeanSquaredError) return {"mae"};  // regression's; targets may be values
  return {loss == LossKind::kBinaryCrossentropy ? "binary_accuracy" : "accuracy"};
}

std::string metric_mismatch(const std::string& given, LossKind loss) {
  const std::string name = metric_kind(given);
  const bool binary = loss == LossKind::kBinaryCrossentropy;
  if (name == "accuracy" && binary)
    return "accuracy counts one class per sample; with binary_crossentropy use binary_accuracy";
  if (name == "binary_accuracy" && !binary)
    return "binary_accuracy thresholds independent labels; it needs binary_crossentropy";
  if (name == "auc" && !binary)
    return "auc ranks the probabilities of independent labels; it needs binary_crossentropy";
  if (name == "mae" && loss != LossKind::kMeanSquaredError)
    return "mae compares outputs with targets as numbers; it needs mean_squared_error";
  return "";
}

MetricSet::MetricSet(std::vector<std::string> names, LossKind loss, int64_t outputs,
                     int64_t positions)
    : names_(std::move(names)), loss_(loss), outputs_(outputs / positions), positions_(positions) {
  for (const std::string& given : names_) {
    const std::string name = metric_kind(given);
    if (name == "mae") absolute_error_ = true;
    if (name.find("precision") != std::string::npos || name.find("recall") != std::string::npos ||
        name.find("f1") != std::string::npos)
      per_output_ = true;
    if (name == "auc") auc_ = true;
  }
  sum_count_ = 2 + (absolute_error_ ? 1 : 0) +
               (per_output_ ? 3 * static_cast<size_t>(outputs) : 0) + (auc_ ? 2 * kAucBins : 0);
}

size_t MetricSet::auc_offset() const {
  return 2 + (absolute_error_ ? 1 : 0) + (per_output_ ? 3 * static_cast<size_t>(outputs_) : 0);
}

void MetricSet::add(std::span<double> sums, const LossStats& stats, const float* outputs,
                    const float* targets, int64_t rows, std::optional<double> samples) const {
  sums[kCorrect] += stats.correct;
  sums[kSamples] += samples.value_or(static_cast<double>(rows));
  if (!needs_outputs()) return;
  const auto cols = static_cast<size_t>(outputs_);
  const bool sparse = loss_ == LossKind::kSparseCategoricalCrossentropy;
  const bool binary = loss_ == LossKind::kBinaryCrossentropy;
  size_t at = 2;
  if (absolute_error_) {
    double error = 0;
    for (size_t i = 0; i < static_cast<size_t>(rows) * cols; ++i)
      error += std::abs(static_cast<double>(outputs[i]) - targets[i]);
    sums[at++] += error;
  }
  if (auc_) {  // Note [AUC]
    double* positive_bins = &sums[auc_offset()];
    double* negative_bins = positive_bins + kAucBins;
    const std::array<float, kAucThresholds>& thresholds = auc_thresholds();
    for (size_t i = 0; i < static_cast<size_t>(rows) * cols; ++i) {
      const float probability = 1.0f / (1.0f + std::exp(-outputs[i]));
      const auto exceeded = static_cast<size_t>(
          std::lower_bound(thresholds.begin(), thresholds.end(), probability) - thresholds.begin());
      (targets[i] > 0.5f ? positive_bins : negative_bins)[exceeded] += 1;
    }
  }
  if (!per_output_) return;
  double* positives = &sums[at];         // true positives per output
  double* false_pos = positives + cols;  // false positives
  double* false_neg = false_pos + cols;  // false negatives
  for (size_t r = 0; r < static_cast<size_t>(rows * positions_); ++r) {
    if (targets[sparse ? r : r * cols] < 0) continue;  // ignored: Note [masked positions]
    const float* out = outputs + r * cols;
    // A sample's predicted and true labels: each output above its threshold (binary), or the
    // one argmax (one class per sample).
    const size_t predicted = binary ? 0 : argmax(out, outputs_);
    const size_t actual = sparse   ? static_cast<size_t>(targets[r])
                          : binary ? 0
                                   : argmax(targets + r * cols, outputs_);
    for (size_t c = 0; c < cols; ++c) {
      const bool p = binary ? out[c] > 0 : c == predicted;
      const bool t = binary ? targets[r * cols + c] > 0.5f : c == actual;
      positives[c] += p && t;
      false_pos[c] += p && !t;
      false_neg[c] += !p && t;
    }
  }
}

std::vector<MetricValue> MetricSet::values(std::span<const double> sums) const {
  const auto cols = static_cast<size_t>(outputs_);
  const double samples = sums[kSamples];
  const size_t per_output = 2 + (absolute_error_ ? 1 : 0);
  double tp = 0, fp = 0, fn = 0;
  double macro_p = 0, macro_r = 0, macro_f1 = 0;
  if (per_output_) {
    for (size_t c = 0; c < cols; ++c) {
      const double t = sums[per_output + c], f = sums[per_output + cols + c],
                   n = sums[per_output + 2 * cols + c];
      tp += t;
      fp += f;
      fn += n;
      macro_p += ratio(t, t + f) / static_cast<double>(cols);
      macro_r += ratio(t, t + n) / static_cast<double>(cols);
      macro_f1 += ratio(2 * t, 2 * t + f + n) / static_cast<double>(cols);
    }
  }
  std::vector<MetricValue> out;
  for (const std::string& given : names_) {
    const std::string name = metric_kind(given);
    double v = 0;
    if (name == "accuracy") v = ratio(sums[kCorrect], samples);
    if (name == "binary_accuracy") v = ratio(sums[kCorrect], samples * static_cast<double>(cols));
    if (name == "mae") v = ratio(sums[2], samples * static_cast<double>(cols));
    if (name == "precision") v = ratio(tp, tp + fp);
    if (name == "recall") v = ratio(tp, tp + fn);
    if (name == "f1") v = ratio(2 * tp, 2 * tp + fp + fn);
    if (name == "macro_precision") v = macro_p;
    if (name == "macro_recall") v = macro_r;
    if (name == "macro_f1") v = macro_f1;
    if (name == "auc") v = auc_of(&sums[auc_offset()], &sums[auc_offset() + kAucBins]);
    out.push_back({given, v});
  }
  return out;
}

}  // namespace ddp
