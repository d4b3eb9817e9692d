#include "train/trainer.h"

#include <algorithm>
#include <array>
#include <iostream>
#include <chrono>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "dist/agreement.h"
#include "optim/adam.h"
#include "optim/sgd.h"
#include "train/replica_check.h"

namespace ddp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, ComputeBackend& backend,
                                          size_t count) {
  if (config.type == "sgd") return std::make_unique<Sgd>(backend, count, config.sgd);
  return std::make_unique<Adam>(backend, count, config.adam);
}

}  // namespace

Dataset load_dataset(const DataSourceConfig& source, int rank) {
  Dataset data;
  if (source.type == "synthetic") {
    data = make_synthetic(source.samples, source.features, source.classes, source.seed);
  } else if (source.type == "idx") {
    data = read_idx(expand_rank(source.images, rank), expand_rank(source.labels, rank),
                    source.normalize ? 1.0f / 255.0f : 1.0f);
  } else {
    data = read_csv(expand_rank(source.file, rank),
                    {source.header, source.label_column, static_cast<float>(source.scale)});
  }
  data.origin = source.path + " (" + data.origin + ")";
  return data;
}

Trainer::Trainer(const Config& config, Communicator& comm, ComputeBackend& backend, Dataset train,
                 std::optional<Dataset> test)
    : config_(config),
      comm_(comm),
      backend_(backend),
      train_(std::move(train)),
      test_(std::move(test)),
      loss_(config.loss) {
  run_agreed(comm_, [this] { validate_and_build(); });
  progress_ = std::make_unique<ProgressBar>(std::cout, false);

  // Every rank initializes from the same seed, and rank 0's values are broadcast anyway so
  // replicas start identical whatever the ranks' math libraries do.
  model_->init_params(config_.seed);
  std::vector<float> initial(model_->param_count());
  backend_.copy_to_host(model_->params().data(), initial.data(), initial.size());
  comm_.broadcast(std::span<float>(initial), 0);
  backend_.copy_to_device(initial.data(), model_->params().data(), initial.size());
}

void Trainer::validate_and_build() {
  const TrainingConfig& t = config_.training;
  const int world = comm_.size();
  if (t.batch_mode == BatchMode::kGlobal) {
    if (t.batch_size % world != 0)
      throw ConfigError(config_.file + ": training.global_batch_size: " +
                        std::to_string(t.batch_size) + " does not split evenly over " +
                        std::to_string(world) + " ranks");
    per_rank_batch_ = t.batch_size / world;
  } else {
    per_rank_batch_ = t.batch_size;
  }
  if (train_.size() < global_batch())
    throw DataError(train_.origin + ": " + std::to_string(train_.size()) +
                    " samples are fewer than one global batch of " +
                    std::to_string(global_batch()) + " (" + std::to_string(world) + " ranks x " +
                    std::to_string(per_rank_batch_) + ")");

  const Shape& sample = train_.sample_shape;
  if (config_.input_shape && Shape(*config_.input_shape) != sample)
    throw ConfigError(config_.file + ": model.input: " + Shape(*config_.input_shape).str() +
                      " does not match the sample shape " + sample.str() + " of " +
                      train_.origin);
  if (test_ && test_->sample_shape != sample)
    throw DataError(test_->origin + ": sample shape " + test_->sample_shape.str() +
                    " differs from the training data's " + sample.str());

  model_ = build_sequential(backend_, sample, config_.layers);
  model_->set_output_logits(loss_.takes_logits());
  classes_ = model_->output_cols();
  train_.check_labels(classes_);
  if (test_) test_->check_labels(classes_);

  const int64_t rows = std::max(per_rank_batch_, config_.training.eval_batch_size);
  model_->reserve(rows);
  const int64_t target_width = loss_.target_kind() == TargetKind::kSparse ? 1 : classes_;
  host_features_.resize(static_cast<size_t>(rows * sample.numel()));
  host_targets_.resize(static_cast<size_t>(rows * target_width));
  features_ = DeviceBuffer(backend_, host_features_.size());
  targets_ = DeviceBuffer(backend_, host_targets_.size());

  sampler_ = std::make_unique<DistributedSampler>(train_.size(), per_rank_batch_, world,
                                                  comm_.rank(), config_.seed, t.shuffle, t.tail);
  optimizer_ = make_optimizer(config_.optimizer, backend_, model_->param_count());
  LrScheduleSpec schedule = config_.optimizer.schedule;
  schedule.total_steps = t.epochs * sampler_->steps_per_epoch();
  schedule_ = std::make_unique<LrSchedule>(schedule);
  reducer_ = std::make_unique<GradReducer>(comm_, model_->grads(), model_->param_entries(),
                                           static_cast<size_t>(t.bucket_mb * 1024 * 1024));
}

void Trainer::set_reporting(std::ostream* log, bool progress, const std::string& run_dir) {
  log_ = log;
  progress_ = std::make_unique<ProgressBar>(log ? *log : std::cout, log && progress);
  if (!run_dir.empty()) metrics_log_ = std::make_unique<MetricsLog>(run_dir + "/metrics.jsonl");
}

LossStats Trainer::train_step() {
  if (step_in_epoch_ == 0) sampler_->set_epoch(epoch_);
  const int64_t b = per_rank_batch_;
  gather_batch(train_, sampler_->indices(step_in_epoch_), loss_.target_kind(), classes_,
               host_features_.data(), host_targets_.data());
  const size_t width = static_cast<size_t>(train_.sample_shape.numel());
  const size_t target_width = loss_.target_kind() == TargetKind::kSparse ? 1 : classes_;
  backend_.copy_to_device(host_features_.data(), features_.data(), b * width);
  backend_.copy_to_device(host_targets_.data(), targets_.data(), b * target_width);

  const float* output = model_->forward(features_.data(), b);
  const LossStats stats =
      loss_.compute(backend_, output, targets_.data(), model_->output_grad(),
                    1.0f / static_cast<float>(global_batch()), b, classes_);
  model_->backward(b);
  reducer_->reduce();
  optimizer_->step(model_->params(), model_->grads(), schedule_->at(completed_steps_));

  ++completed_steps_;
  if (++step_in_epoch_ == sampler_->steps_per_epoch()) {
    step_in_epoch_ = 0;
    ++epoch_;
  }
  const int64_t every = config_.training.check_replicas_every;
  if (every > 0 && completed_steps_ % every == 0)
    check_replicas(comm_, backend_, *model_, completed_steps_);
  return stats;
}

void Trainer::train_steps(int64_t count) {
  for (int64_t i = 0; i < count; ++i) train_step();
}

EvalResult Trainer::evaluate(const Dataset& data) {
  // Contiguous, disjoint shards; ranks may get one sample more or less, which is fine because
  // evaluation has no collective until the final sums.
  const int64_t n = data.size();
  const int64_t begin = n * comm_.rank() / comm_.size();
  const int64_t end = n * (comm_.rank() + 1) / comm_.size();
  const int64_t batch = config_.training.eval_batch_size;
  const size_t width = static_cast<size_t>(data.sample_shape.numel());
  const size_t target_width = loss_.target_kind() == TargetKind::kSparse ? 1 : classes_;
  std::vector<int64_t> indices;
  std::array<double, 3> sums = {0, 0, 0};  // loss, correct, samples
  for (int64_t start = begin; start < end; start += batch) {
    const int64_t rows = std::min(batch, end - start);
    indices.resize(static_cast<size_t>(rows));
    std::iota(indices.begin(), indices.end(), start);
    gather_batch(data, indices, loss_.target_kind(), classes_, host_features_.data(),
                 host_targets_.data());
    backend_.copy_to_device(host_features_.data(), features_.data(), rows * width);
    backend_.copy_to_device(host_targets_.data(), targets_.data(), rows * target_width);
    const float* output = model_->forward(features_.data(), rows);
    const LossStats stats =
        loss_.compute(backend_, output, targets_.data(), nullptr, 1, rows, classes_);
    sums[0] += stats.loss_sum;
    sums[1] += stats.correct;
    sums[2] += static_cast<double>(rows);
  }
  comm_.all_reduce_sum(std::span<double>(sums));
  return {sums[0] / sums[2], sums[1] / sums[2]};
}

std::string Trainer::describe_batch() const {
  const std::string split = std::to_string(comm_.size()) + " ranks x " +
                            std::to_string(per_rank_batch_) + " per rank = " +
                            std::to_string(global_batch()) + " global";
  if (config_.training.batch_mode == BatchMode::kGlobal)
    return "batch: global_batch_size " + std::to_string(config_.training.batch_size) +
           " (strong scaling: " + split + ")";
  return "batch: batch_size_per_rank " + std::to_string(per_rank_batch_) +
         " (weak scaling: " + split + ")";
}

void Trainer::fit() {
  const int64_t epochs = config_.training.epochs;
  const int64_t steps = sampler_->steps_per_epoch();
  if (log_) {
    *log_ << model_->summary() << "loss: " << loss_.name()
          << ", optimizer: " << optimizer_->name() << ", " << describe_batch() << ", "
          << steps << " steps per epoch, " << reducer_->buckets().size()
          << " gradient bucket(s), " << comm_.name() << " communicator\n"
          << std::flush;
  }
  while (epoch_ < epochs) {
    const int64_t epoch = epoch_;
    const auto start = Clock::now();
    progress_->start(epoch + 1, epochs, steps);
    std::array<double, 3> sums = {0, 0, 0};  // loss, correct, samples
    const int64_t first_step = step_in_epoch_;
    while (epoch_ == epoch) {
      const LossStats stats = train_step();
      sums[0] += stats.loss_sum;
      sums[1] += stats.correct;
      sums[2] += static_cast<double>(per_rank_batch_);
      progress_->update(step_in_epoch_ == 0 ? steps : step_in_epoch_, sums[0] / sums[2]);
    }
    const double train_seconds = seconds_since(start);
    comm_.all_reduce_sum(std::span<double>(sums));

    EpochRecord record;
    record.epoch = epoch + 1;
    record.epochs = epochs;
    record.steps = steps - first_step;
    record.loss = sums[0] / sums[2];
    record.accuracy = sums[1] / sums[2];
    record.samples_per_sec = sums[2] / train_seconds;
    if (test_) {
      const EvalResult eval = evaluate(*test_);
      record.val_loss = eval.loss;
      record.val_accuracy = eval.accuracy;
    }
    check_replicas(comm_, backend_, *model_, completed_steps_);
    record.seconds = seconds_since(start);
    progress_->clear();
    if (log_) *log_ << format_epoch_line(record) << '\n' << std::flush;
    if (metrics_log_) metrics_log_->append(record);
  }
}

}  // namespace ddp
