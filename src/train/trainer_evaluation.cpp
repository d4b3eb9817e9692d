// The Trainer's batches outside the step: staging samples into the backend, a batch's loss and
// metric sums (Note [exact metrics]), and evaluation and prediction over a dataset.

#include <algorithm>
#include <numeric>

#include "core/error.h"
#include "train/trainer.h"

namespace ddp {

const float* Trainer::stage_batch(const Dataset& data, std::span<const int64_t> indices,
                                  std::optional<int64_t> augment_from, bool targets) {
  const auto width = static_cast<int64_t>(data.sample_shape.numel());
  const int64_t target_width = target_width_per_row();
  // Host memory is the backend's on the CPU: the rows go straight there, gathered by the rank's
  // threads (W2, 1 rank x 2 threads: one thread took 6% of the step for it). The targets stay in
  // host_targets_ too, where the metrics read them.
  const bool host = backend_.memory() == MemoryKind::kHost;
  float* features = host ? features_.data() : host_features_.data();
  backend_.share_host_work(static_cast<int64_t>(indices.size()), [&](int64_t begin, int64_t end) {
    gather_batch(data,
                 indices.subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)),
                 target_layout_, classes_, features + begin * width,
                 targets ? host_targets_.data() + begin * target_width : nullptr,
                 static_cast<float>(config_.label_smoothing), positions_);
    if (augment_from && augmenter_)
      augmenter_->apply_to_batch(derive_seed(config_.seed, 4000 + static_cast<uint64_t>(epoch_)),
                                 *augment_from + begin, features + begin * width, end - begin);
  });
  const auto rows = static_cast<size_t>(indices.size());
  if (!host) backend_.copy_to_device(features, features_.data(), rows * static_cast<size_t>(width));
  if (targets && config_.ignore_class)  // Note [masked positions]
    std::replace(host_targets_.begin(),
                 host_targets_.begin() + static_cast<std::ptrdiff_t>(rows * target_width),
                 static_cast<float>(*config_.ignore_class), kIgnoredTarget);
  if (targets)
    backend_.copy_to_device(host_targets_.data(), targets_.data(),
                            rows * static_cast<size_t>(target_width));
  // Note [sample weights]; Note [class weights], for training batches (augment_from) only.
  const bool by_class = augment_from && !class_weights_.empty();
  if (!targets || !(by_class || data.weighted())) return nullptr;
  // Note [targets per position]: a sample's weight for each of its positions (class weights
  // take one label a sample).
  const auto positions = static_cast<size_t>(positions_);
  for (size_t row = 0; row < rows; ++row) {
    const auto sample = static_cast<size_t>(indices[row]);
    float weight = data.weighted() ? data.sample_weights[sample] : 1.0f;
    if (by_class) weight *= class_weights_[static_cast<size_t>(data.labels[sample])];
    std::fill_n(host_row_weights_.begin() + static_cast<std::ptrdiff_t>(row * positions), positions,
                weight);
  }
  backend_.copy_to_device(host_row_weights_.data(), row_weights_.data(), rows * positions);
  return row_weights_.data();
}

const float* Trainer::stage_rows(const Dataset& data, int64_t start, int64_t rows, bool targets) {
  row_indices_.resize(static_cast<size_t>(rows));
  std::iota(row_indices_.begin(), row_indices_.end(), start);
  return stage_batch(data, row_indices_, std::nullopt, targets);
}

void Trainer::add_batch(std::span<double> sums, const LossStats& stats, const float* output,
                        int64_t rows, double counted) {
  sums[0] += stats.loss_sum;
  if (metrics_->needs_outputs())
    backend_.copy_to_host(output, host_outputs_.data(), static_cast<size_t>(rows * classes_));
  metrics_->add(sums.subspan(1), stats, host_outputs_.data(), host_targets_.data(), rows,
                counted / static_cast<double>(positions_));
}

LossStats Trainer::compute_loss(const float* output, const float* row_weights, float* doutput,
                                double mean_over, int64_t rows, Readback readback) {
  // A step whose every position is padding has nothing to average (and no gradient).
  const float scale = mean_over > 0 ? static_cast<float>(1 / mean_over) : 0.0f;
  return per_sample(loss_.compute(backend_, output, targets_.data(), row_weights, doutput, scale,
                                  rows * positions_, classes_ / positions_, readback));
}

double Trainer::count_targets(int64_t rows) {
  const auto positions = static_cast<size_t>(rows * positions_);
  if (!counts_targets_) return static_cast<double>(positions);
  // A position's target: its class index, or the first of its one-hot row (kIgnoredTarget).
  const auto width = static_cast<size_t>(target_width_per_row() / positions_);
  if (masked_positions_) {
    host_mask_.resize(positions);
    backend_.copy_to_host(model_->output_mask(), host_mask_.data(), positions);
    for (size_t i = 0; i < positions; ++i)
      if (host_mask_[i] == 0) host_targets_[i * width] = kIgnoredTarget;
    backend_.copy_to_device(host_targets_.data(), targets_.data(), positions * width);
  }
  size_t counted = 0;
  for (size_t i = 0; i < positions; ++i) counted += host_targets_[i * width] >= 0;
  return static_cast<double>(counted);
}

double Trainer::global_count(double counted, int64_t step_samples) {
  if (!counts_targets_) return static_cast<double>(step_samples * positions_);
  comm_.all_reduce_sum(std::span<double>(&counted, 1));  // whole numbers: exact in any order
  return counted;
}

double Trainer::accumulated_count(double earlier, double counted, int64_t step_samples) {
  if (!counts_targets_) return global_count(counted, step_samples);
  const double total = earlier + global_count(counted, step_samples);
  // The earlier micro-batches' gradients were a mean over `earlier` targets; now over `total`.
  if (earlier > 0 && total != earlier)
    backend_.scale_shift(model_->grads().data(), model_->grads().data(), model_->param_count(),
                         static_cast<float>(earlier / total), 0.0f);
  return total;
}

LossStats Trainer::per_sample(const LossStats& positions_stats) const {
  const auto positions = static_cast<double>(positions_);
  return {positions_stats.loss_sum / positions, positions_stats.correct / positions};
}

std::pair<int64_t, int64_t> Trainer::rank_rows(int64_t n) const {
  return {n * comm_.rank() / comm_.size(), n * (comm_.rank() + 1) / comm_.size()};
}

EvalResult Trainer::evaluate(const Dataset& data) {
  settle_verdict();
  // Ranks may get one sample more or less, which is fine because evaluation has no collective
  // until the final sums.
  const auto [begin, end] = rank_rows(data.size());
  const int64_t batch = config_.training.eval_batch_size;
  std::vector<double> sums(epoch_sums_.size());  // Note [exact metrics]
  for (int64_t start = begin; start < end; start += batch) {
    const int64_t rows = std::min(batch, end - start);
    const float* row_weights = stage_rows(data, start, rows);
    const float* output = model_->forward(features_.data(), rows);
    const double counted = count_targets(rows);
    add_batch(sums, compute_loss(output, row_weights, nullptr, counted, rows, Readback::kNow),
              output, rows, counted);
  }
  comm_.all_reduce_sum(std::span<double>(sums));
  const double penalty = penalty_.empty() ? 0 : penalty_.value(backend_, model_->params());
  return {sums[0] / samples_in(sums) + penalty, metrics_->values(std::span(sums).subspan(1))};
}

void Trainer::check_fits_model(const Dataset& data, bool labels) const {
  const Shape& input = model_->input_shape();
  if (data.sample_shape.numel() != input.numel())
    throw DataError(data.origin + ": samples of shape " + data.sample_shape.str() + " (" +
                    std::to_string(data.sample_shape.numel()) + " values), but the model takes " +
                    input.str() + " (" + std::to_string(input.numel()) + ")");
  if (const int64_t vocabulary = model_->layers().front()->token_vocabulary())
    data.check_token_ids(vocabulary);
  if (labels)
    data.check_labels(classes_ / positions_, target_layout_,
                      loss_.kind() == LossKind::kBinaryCrossentropy, positions_,
                      config_.ignore_class);
}

std::vector<float> Trainer::predict_rows(const Dataset& data, int64_t first, int64_t count) {
  const int64_t batch = config_.training.eval_batch_size;
  std::vector<float> out(static_cast<size_t>(count * classes_));
  for (int64_t done = 0; done < count; done += batch) {
    const int64_t rows = std::min(batch, count - done);
    stage_rows(data, first + done, rows, false);  // unlabelled data may have no targets
    const float* probs = model_->predict(features_.data(), rows);
    backend_.copy_to_host(probs, out.data() + done * classes_,
                          static_cast<size_t>(rows * classes_));
  }
  return out;
}

std::vector<float> Trainer::predict(const Dataset& data) {
  settle_verdict();
  // Each rank its share of the rows, then every rank all of them: a sum in which each value
  // meets only zeros is that value (a -0 comes back as +0).
  const int64_t n = data.size();
  const auto [first, last] = rank_rows(n);
  const std::vector<float> mine = predict_rows(data, first, last - first);
  std::vector<float> all(static_cast<size_t>(n * classes_), 0.0f);
  std::copy(mine.begin(), mine.end(), all.begin() + first * classes_);
  if (!all.empty()) comm_.all_reduce_sum(std::span<float>(all));
  return all;
}

}  // namespace ddp
