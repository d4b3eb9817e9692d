#include "train/trainer.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <iostream>
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
  // Collective, so only after every rank has built its model.
  run_agreed(comm_, [this] { reducible_grads_ = comm_.allocate_reducible(model_->param_count()); });
  if (reducible_grads_) model_->place_grads(reducible_grads_->span());
  reducer_ =
      std::make_unique<GradReducer>(comm_, model_->grads(), model_->param_entries(),
                                    static_cast<size_t>(config_.training.bucket_mb * 1024 * 1024),
                                    config_.training.bf16_wire ? &backend_ : nullptr);
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
      throw ConfigError(config_.file +
                        ": training.global_batch_size: " + std::to_string(t.batch_size) +
                        " does not split evenly over " + std::to_string(world) + " ranks");
    per_rank_batch_ = t.batch_size / world;
  } else {
    per_rank_batch_ = t.batch_size;
  }
  accumulation_ = t.accumulation_steps;
  if (train_.size() < micro_batch())
    throw DataError(train_.origin + ": " + std::to_string(train_.size()) +
                    " samples are fewer than one global batch of " + std::to_string(micro_batch()) +
                    " (" + std::to_string(world) + " ranks x " + std::to_string(per_rank_batch_) +
                    ")");

  const Shape& sample = train_.sample_shape;
  if (config_.input_shape && Shape(*config_.input_shape) != sample)
    throw ConfigError(config_.file + ": model.input: " + Shape(*config_.input_shape).str() +
                      " does not match the sample shape " + sample.str() + " of " + train_.origin);
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
  zero1_ = t.zero1 && world > 1;
  shard_count_ = model_->param_count();
  if (zero1_) {
    const size_t n = model_->param_count();
    for (int r = 0; r <= world; ++r) shard_begin_.push_back(n * r / world);
    shard_offset_ = shard_begin_[comm_.rank()];
    shard_count_ = shard_begin_[comm_.rank() + 1] - shard_offset_;
    shard_grads_ = DeviceBuffer(backend_, shard_count_);
  }
  optimizer_ = make_optimizer(config_.optimizer, backend_, shard_count_);
  LrScheduleSpec schedule = config_.optimizer.schedule;
  // Micro-batches left over at an epoch's end (fewer than accumulation_steps) are not used.
  steps_per_epoch_ = sampler_->steps_per_epoch() / accumulation_;
  if (steps_per_epoch_ == 0)
    throw DataError(train_.origin + ": " + std::to_string(train_.size()) +
                    " samples do not fill one step of " + std::to_string(accumulation_) +
                    " accumulated micro-batches of " + std::to_string(micro_batch()));
  schedule.total_steps = t.epochs * steps_per_epoch_;
  schedule_ = std::make_unique<LrSchedule>(schedule);
}

void Trainer::set_reporting(std::ostream* log, bool progress, const std::string& run_dir) {
  log_ = log;
  progress_ = std::make_unique<ProgressBar>(log ? *log : std::cout, log && progress);
  if (!run_dir.empty())
    metrics_log_ = std::make_unique<MetricsLog>(run_dir + "/metrics.jsonl", epoch_);
}

void Trainer::set_checkpointing(const CheckpointConfig& policy, CheckpointHook hook) {
  checkpoint_policy_ = policy;
  checkpoint_hook_ = std::move(hook);
}

void Trainer::stage_batch(const Dataset& data, std::span<const int64_t> indices) {
  gather_batch(data, indices, loss_.target_kind(), classes_, host_features_.data(),
               host_targets_.data());
  const size_t rows = indices.size();
  const auto width = static_cast<size_t>(data.sample_shape.numel());
  const size_t target_width = loss_.target_kind() == TargetKind::kSparse ? 1 : classes_;
  backend_.copy_to_device(host_features_.data(), features_.data(), rows * width);
  backend_.copy_to_device(host_targets_.data(), targets_.data(), rows * target_width);
}

void Trainer::stage_rows(const Dataset& data, int64_t start, int64_t rows) {
  row_indices_.resize(static_cast<size_t>(rows));
  std::iota(row_indices_.begin(), row_indices_.end(), start);
  stage_batch(data, row_indices_);
}

void Trainer::train_step() {
  auto t0 = Clock::now();
  auto lap = [&t0](double& into) {
    const auto t1 = Clock::now();
    into += std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
  };
  if (step_observer_) step_observer_(completed_steps_);
  if (step_in_epoch_ == 0) sampler_->set_epoch(epoch_);
  const int64_t b = per_rank_batch_;
  LossStats stats;
  // Note [accumulation]: micro-batch j of step s is global micro-batch s * k + j of the epoch's
  // order, so k accumulated micro-batches cover exactly the samples of one k-times larger batch;
  // gradients add up locally and are reduced once, after the last.
  for (int64_t micro = 0; micro < accumulation_; ++micro) {
    const bool last = micro + 1 == accumulation_;
    stage_batch(train_, sampler_->indices(step_in_epoch_ * accumulation_ + micro));
    lap(phase_times_.data);

    const float* output = model_->forward(features_.data(), b);
    const LossStats micro_stats =
        loss_.compute(backend_, output, targets_.data(), model_->output_grad(),
                      1.0f / static_cast<float>(global_batch()), b, classes_);
    stats.loss_sum += micro_stats.loss_sum;
    stats.correct += micro_stats.correct;
    lap(phase_times_.forward);
    const bool accumulate = micro > 0;
    if (last && config_.training.overlap) {
      model_->backward(
          b, [this](size_t offset) { reducer_->gradients_ready(offset); }, accumulate);
    } else {
      model_->backward(b, {}, accumulate);
    }
    lap(phase_times_.backward);
    if (last) reduce_gradients();
    lap(phase_times_.comm);
  }
  if (!gradients_finite()) {
    if (!config_.training.skip_nonfinite) {
      RuntimeError error("non-finite gradients at step " + std::to_string(completed_steps_ + 1) +
                         " (epoch " + std::to_string(epoch_ + 1) + ", rank-local loss sum " +
                         std::to_string(stats.loss_sum) +
                         "); lower the learning rate, or set training.nonfinite: skip");
      error.mark_agreed();  // every rank reached the same verdict
      throw error;
    }
    ++skipped_in_epoch_;
  } else {
    optimizer_step();
  }
  lap(phase_times_.optimizer);
  ++phase_times_.steps;

  epoch_sums_[0] += stats.loss_sum;
  epoch_sums_[1] += stats.correct;
  epoch_sums_[2] += static_cast<double>(b * accumulation_);
  ++completed_steps_;
  if (++step_in_epoch_ == steps_per_epoch_) {
    step_in_epoch_ = 0;
    ++epoch_;
  }
  const int64_t every = config_.training.check_replicas_every;
  if (every > 0 && completed_steps_ % every == 0) verify_replicas();
}

void Trainer::reduce_gradients() {
  if (config_.training.overlap) {
    reducer_->finish();
  } else if (zero1_) {
    reducer_->reduce_scatter(shard_grads_.span(), shard_begin_);
  } else {
    reducer_->reduce();
  }
}

bool Trainer::gradients_finite() {
  if (!zero1_) return backend_.all_finite(model_->grads().data(), model_->param_count());
  const bool mine = backend_.all_finite(shard_grads_.data(), shard_count_);
  return comm_.all_reduce_max(mine ? 0 : 1) == 0;
}

void Trainer::optimizer_step() {
  const float lr = schedule_->at(completed_steps_);
  if (!zero1_) {
    optimizer_->step(model_->params(), model_->grads(), lr);
    return;
  }
  optimizer_->step(model_->params().subspan(shard_offset_, shard_count_), shard_grads_.span(), lr);
  reducer_->all_gather(model_->params(), shard_begin_);
}

std::vector<float> Trainer::gather_state(const StateTensor& state) {
  std::vector<float> full(model_->param_count());
  backend_.copy_to_host(state.data.data(), full.data() + shard_offset_, state.data.size());
  if (zero1_) {
    std::vector<int> counts;
    for (size_t r = 0; r + 1 < shard_begin_.size(); ++r)
      counts.push_back(static_cast<int>(shard_begin_[r + 1] - shard_begin_[r]));
    comm_.all_gather(full, counts);
  }
  return full;
}

void Trainer::train_steps(int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    train_step();
    if (step_in_epoch_ == 0) epoch_sums_ = {};
  }
}

EvalResult Trainer::evaluate(const Dataset& data) {
  // Contiguous, disjoint shards; ranks may get one sample more or less, which is fine because
  // evaluation has no collective until the final sums.
  const int64_t n = data.size();
  const int64_t begin = n * comm_.rank() / comm_.size();
  const int64_t end = n * (comm_.rank() + 1) / comm_.size();
  const int64_t batch = config_.training.eval_batch_size;
  std::array<double, 3> sums = {0, 0, 0};  // loss, correct, samples
  for (int64_t start = begin; start < end; start += batch) {
    const int64_t rows = std::min(batch, end - start);
    stage_rows(data, start, rows);
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

std::vector<float> Trainer::predict(const Dataset& data, int64_t count) {
  count = std::min(count, data.size());
  const int64_t batch = config_.training.eval_batch_size;
  std::vector<float> out(static_cast<size_t>(count * classes_));
  for (int64_t start = 0; start < count; start += batch) {
    const int64_t rows = std::min(batch, count - start);
    stage_rows(data, start, rows);
    const float* probs = model_->predict(features_.data(), rows);
    backend_.copy_to_host(probs, out.data() + start * classes_,
                          static_cast<size_t>(rows * classes_));
  }
  return out;
}

std::string Trainer::describe_batch() const {
  const std::string split = std::to_string(comm_.size()) + " ranks x " +
                            std::to_string(per_rank_batch_) +
                            " per rank = " + std::to_string(global_batch()) + " global";
  const std::string accumulation =
      accumulation_ > 1
          ? ", " + std::to_string(accumulation_) +
                " accumulated micro-batches = " + std::to_string(global_batch()) + " per step"
          : "";
  if (config_.training.batch_mode == BatchMode::kGlobal)
    return "batch: global_batch_size " + std::to_string(config_.training.batch_size) +
           " (strong scaling: " + split + accumulation + ")";
  return "batch: batch_size_per_rank " + std::to_string(per_rank_batch_) +
         " (weak scaling: " + split + accumulation + ")";
}

void Trainer::verify_replicas() {
  // An epoch end that also writes a checkpoint would otherwise check the same parameters twice.
  if (last_replica_check_step_ == completed_steps_) return;
  check_replicas(comm_, backend_, *model_, completed_steps_);
  last_replica_check_step_ = completed_steps_;
}

void Trainer::checkpoint_now() {
  if (!checkpoint_hook_ || last_checkpoint_step_ == completed_steps_) return;
  checkpoint_hook_(*this);
  last_checkpoint_step_ = completed_steps_;
}

void Trainer::finish_epoch(int64_t epoch, double train_seconds, int64_t steps_run) {
  const auto start = Clock::now();
  std::array<double, 3> sums = epoch_sums_;
  comm_.all_reduce_sum(std::span<double>(sums));
  epoch_sums_ = {};

  EpochRecord record;
  record.epoch = epoch + 1;
  record.epochs = config_.training.epochs;
  record.steps = steps_per_epoch_;
  record.skipped_steps = skipped_in_epoch_;
  skipped_in_epoch_ = 0;
  record.loss = sums[0] / sums[2];
  record.accuracy = sums[1] / sums[2];
  record.samples_per_sec =
      static_cast<double>(steps_run * global_batch()) / std::max(train_seconds, 1e-9);
  if (test_) {
    const EvalResult eval = evaluate(*test_);
    record.val_loss = eval.loss;
    record.val_accuracy = eval.accuracy;
  }
  verify_replicas();
  record.seconds = train_seconds + seconds_since(start);
  progress_->clear();
  if (log_) *log_ << format_epoch_line(record) << '\n' << std::flush;
  if (metrics_log_) metrics_log_->append(record);
}

void Trainer::fit(int64_t stop_after_steps) {
  const int64_t epochs = config_.training.epochs;
  const int64_t steps = steps_per_epoch_;
  if (log_) {
    *log_ << model_->summary() << "loss: " << loss_.name() << ", optimizer: " << optimizer_->name()
          << ", " << describe_batch() << ", " << steps << " steps per epoch, "
          << reducer_->buckets().size() << " gradient bucket(s), " << comm_.name()
          << " communicator\n"
          << std::flush;
  }
  const CheckpointConfig& policy = checkpoint_policy_;
  verify_replicas();
  while (epoch_ < epochs) {
    const int64_t epoch = epoch_;
    const auto start = Clock::now();
    progress_->start(epoch + 1, epochs, steps);
    int64_t steps_run = 0;
    while (epoch_ == epoch) {
      if (stop_after_steps >= 0 && completed_steps_ >= stop_after_steps) {
        progress_->clear();
        checkpoint_now();
        return;
      }
      train_step();
      ++steps_run;
      progress_->update(step_in_epoch_ == 0 ? steps : step_in_epoch_,
                        epoch_sums_[0] / epoch_sums_[2]);
      if (epoch_ == epoch && policy.every_steps > 0 && completed_steps_ % policy.every_steps == 0)
        checkpoint_now();
    }
    finish_epoch(epoch, seconds_since(start), steps_run);
    // A step trigger that falls on the epoch's last step waits for the epoch's report.
    if ((policy.every_epochs > 0 && (epoch + 1) % policy.every_epochs == 0) ||
        (policy.every_steps > 0 && completed_steps_ % policy.every_steps == 0))
      checkpoint_now();
  }
  checkpoint_now();
}

std::vector<TensorSignature> Trainer::signature() const {
  std::vector<TensorSignature> out;
  for (const ParamEntry& e : model_->param_entries()) out.push_back({e.name, e.shape});
  return out;
}

std::vector<float> Trainer::params_to_host() {
  std::vector<float> host(model_->param_count());
  backend_.copy_to_host(model_->params().data(), host.data(), host.size());
  return host;
}

void Trainer::load_params(std::span<const float> host) {
  backend_.copy_to_device(host.data(), model_->params().data(), host.size());
  last_replica_check_step_ = -1;
}

TrainingState Trainer::capture() {
  // A checkpoint of diverged replicas would preserve the divergence.
  verify_replicas();
  TrainingState s;
  s.epoch = epoch_;
  s.step_in_epoch = step_in_epoch_;
  s.completed_steps = completed_steps_;
  s.epoch_sums = epoch_sums_;
  comm_.all_reduce_sum(std::span<double>(s.epoch_sums));
  s.world_size = comm_.size();
  s.batch_mode = config_.training.batch_mode == BatchMode::kGlobal ? "global" : "per_rank";
  s.global_batch = global_batch();
  s.per_rank_batch = per_rank_batch_;
  s.seed = config_.seed;
  s.signature = signature();
  s.optimizer = optimizer_->name();
  s.optimizer_steps = optimizer_->steps_taken();
  s.config_yaml = YAML::Dump(config_.resolved);
  s.params = params_to_host();
  for (const StateTensor& t : optimizer_->state())
    s.optimizer_state.emplace_back(t.name, gather_state(t));
  return s;
}

void Trainer::restore(const TrainingState& s, const std::string& origin) {
  auto fail = [&origin](const std::string& what) { return CheckpointError(origin + ": " + what); };
  const std::vector<TensorSignature> mine = signature();
  for (size_t i = 0; i < std::max(mine.size(), s.signature.size()); ++i) {
    if (i >= s.signature.size()) throw fail("model mismatch: checkpoint lacks " + mine[i].name);
    if (i >= mine.size())
      throw fail("model mismatch: checkpoint has an extra tensor " + s.signature[i].name);
    if (mine[i] != s.signature[i])
      throw fail("model mismatch at " + mine[i].name + ": expected shape " + mine[i].shape.str() +
                 ", checkpoint has " + s.signature[i].name + " " + s.signature[i].shape.str());
  }
  if (s.optimizer != optimizer_->name())
    throw fail("optimizer mismatch: checkpoint has " + s.optimizer + " state, config uses " +
               optimizer_->name());
  const std::vector<StateTensor> state = optimizer_->state();
  if (state.size() != s.optimizer_state.size())
    throw fail("optimizer mismatch: checkpoint has " + std::to_string(s.optimizer_state.size()) +
               " state buffer(s), " + optimizer_->name() + " here has " +
               std::to_string(state.size()) + " (momentum changed?)");
  for (size_t i = 0; i < state.size(); ++i)
    if (state[i].name != s.optimizer_state[i].first)
      throw fail("optimizer mismatch: state '" + s.optimizer_state[i].first + "' vs '" +
                 state[i].name + "'");
  if (s.seed != config_.seed)
    throw fail("seed mismatch: checkpoint " + std::to_string(s.seed) + ", config " +
               std::to_string(config_.seed) + " (the data order would not continue)");
  const std::string mode =
      config_.training.batch_mode == BatchMode::kGlobal ? "global" : "per_rank";
  if (s.batch_mode != mode)
    throw fail("batch mode mismatch: checkpoint uses " + s.batch_mode + ", config " + mode);
  if (s.global_batch != global_batch())
    throw fail("global batch mismatch: checkpoint " + std::to_string(s.global_batch) + " (" +
               std::to_string(s.world_size) + " ranks x " + std::to_string(s.per_rank_batch) +
               "), now " + std::to_string(global_batch()) + " (" + std::to_string(comm_.size()) +
               " ranks x " + std::to_string(per_rank_batch_) +
               "); to change the world size, train with global_batch_size");
  if (s.completed_steps != s.epoch * steps_per_epoch_ + s.step_in_epoch ||
      s.step_in_epoch >= steps_per_epoch_)
    throw fail("position (epoch " + std::to_string(s.epoch) + ", step " +
               std::to_string(s.step_in_epoch) + ") does not fit " +
               std::to_string(steps_per_epoch_) + " steps per epoch of this data");

  backend_.copy_to_device(s.params.data(), model_->params().data(), s.params.size());
  for (size_t i = 0; i < state.size(); ++i)  // this rank's shard (all of it without ZeRO-1)
    backend_.copy_to_device(s.optimizer_state[i].second.data() + shard_offset_,
                            state[i].data.data(), state[i].data.size());
  optimizer_->set_steps_taken(s.optimizer_steps);
  epoch_ = s.epoch;
  step_in_epoch_ = s.step_in_epoch;
  completed_steps_ = s.completed_steps;
  sampler_->set_epoch(epoch_);  // train_step() reshuffles only at an epoch's first step
  last_checkpoint_step_ = completed_steps_;
  // The sums so far are global: one rank carries them so the epoch's final all-reduce is right.
  epoch_sums_ = comm_.rank() == 0 ? s.epoch_sums : std::array<double, 3>{};
}

}  // namespace ddp
