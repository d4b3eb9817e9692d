#include "train/trainer.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <iostream>

#include "comm/agreement.h"
#include "core/error.h"
#include "core/machine.h"
#include "core/rng.h"
#include "train/config_reader.h"
#include "train/targets.h"

namespace ddp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Every layer with parameters as a dense layer's weight and bias, if it has one (Note [split
// weight gradients], Note [no bias]), or nothing where some layer with parameters is not dense, or
// is dense over a sequence's positions (more rows than samples, which the exchange is not sized
// for).
std::vector<DenseShape> dense_shapes(const Sequential& model) {
  std::vector<DenseShape> shapes;
  const std::vector<ParamEntry>& entries = model.param_entries();
  for (size_t i = 0; i < entries.size(); ++i) {
    const ParamEntry& e = entries[i];
    const Layer& layer = *model.layers()[e.layer];
    if (layer.type_name() != "Dense" || layer.output_shape().rank() != 1) return {};
    if (e.shape.rank() != 2) continue;  // the bias, with its weight
    const bool bias = i + 1 < entries.size() && entries[i + 1].layer == e.layer;
    shapes.push_back({e.offset, bias ? std::optional(entries[i + 1].offset) : std::nullopt,
                      e.shape[1], e.shape[0]});
  }
  return shapes;
}

}  // namespace

Trainer::Trainer(const Config& config, Communicator& comm, ComputeBackend& backend, Dataset train,
                 std::optional<Dataset> test)
    : config_(config),
      comm_(comm),
      backend_(backend),
      train_(std::move(train)),
      test_(std::move(test)),
      loss_(config.loss, backend, config.loss_pos_weight) {
  run_agreed(comm_, [this] { validate_and_build(); });
  // Collective, so only after every rank has built its model.
  std::vector<size_t> tensor_offsets;
  for (const ParamEntry& e : model_->param_entries()) tensor_offsets.push_back(e.offset);
  // Note [update in backward]: where nothing can come between a gradient and its update.
  const bool update_as_gradients_come = config_.training.update_in_backward && accumulation_ == 1 &&
                                        !config_.training.skip_nonfinite && penalty_.empty() &&
                                        config_.optimizer.global_clipnorm == 0;
  GradSyncOptions sync_options = config_.training.grad_sync;
  sync_options.dense_layers = dense_shapes(*model_);
  sync_options.update_as_gradients_come = update_as_gradients_come;
  sync_options.rows_per_rank = per_rank_batch_;
  sync_ = make_grad_sync(sync_options, comm_, backend_, tensor_offsets, model_->param_count());
  model_->bind_params(sync_->params());
  sync_->params_written();  // before rank 0 reads the initial values below
  model_->bind_grads(sync_->grads());
  optimizer_ = make_optimizer(config_.optimizer, backend_, sync_->shard().count);
  step_update_ = std::make_unique<UpdateInBackward>(*optimizer_, sync_->params(),
                                                    update_as_gradients_come &&
                                                        backend_.prefers_update_in_backward() &&
                                                        sync_->gradients_final_in_backward(),
                                                    sync_->weight_grad_split());
  progress_ = std::make_unique<ProgressBar>(std::cout, ProgressMode::kOff);
  start_schedule();

  // Every rank initializes from the same seed, and rank 0's values are broadcast anyway so
  // replicas start identical whatever the ranks' math libraries do.
  model_->init_params(config_.seed);
  std::vector<float> initial(model_->param_count());
  backend_.copy_to_host(model_->params().data(), initial.data(), initial.size());
  comm_.broadcast(std::span<float>(initial), 0);
  backend_.copy_to_device(initial.data(), model_->params().data(), initial.size());
  sync_->params_written();
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
  if (t.tail == TailPolicy::kPartial && accumulation_ > 1)
    throw ConfigError(config_.file +
                      ": training.tail: partial keeps a short last batch, which accumulated "
                      "micro-batches cannot split evenly; use drop or pad with accumulation_steps");
  // Keras' fit trains data smaller than one batch as one short batch: so does tail: partial,
  // while every rank has a sample of it.
  if (t.tail == TailPolicy::kPartial && train_.size() < world)
    throw DataError(train_.origin + ": " + std::to_string(train_.size()) +
                    " samples are fewer than the " + std::to_string(world) +
                    " ranks, each of which trains a share of every batch");
  if (t.tail != TailPolicy::kPartial && train_.size() < micro_batch())
    throw DataError(train_.origin + ": " + std::to_string(train_.size()) +
                    " samples are fewer than one global batch of " + std::to_string(micro_batch()) +
                    " (" + std::to_string(world) + " ranks x " + std::to_string(per_rank_batch_) +
                    ", training." +
                    (config_.training.batch_mode == BatchMode::kGlobal ? "global_batch_size"
                                                                       : "batch_size_per_rank") +
                    ")");

  // model.input may give the samples another shape of as many values, as Keras' input_shape
  // does: (28, 28, 1) images from (28, 28) IDX samples.
  const Shape& sample = train_.sample_shape;
  const Shape input = config_.input_shape ? Shape(*config_.input_shape) : sample;
  if (input.numel() != sample.numel())
    throw ConfigError(config_.file + ": model.input: " + input.str() + " holds " +
                      std::to_string(input.numel()) + " values per sample, but the samples of " +
                      train_.origin + " are " + sample.str() + ", " +
                      std::to_string(sample.numel()) + " values");
  if (test_ && test_->sample_shape != sample)
    throw DataError(test_->origin + ": sample shape " + test_->sample_shape.str() +
                    " differs from the training data's " + sample.str());

  model_ = build_sequential(backend_, input, config_.layers);
  if (const int64_t vocabulary = model_->layers().front()->token_vocabulary()) {
    train_.check_token_ids(vocabulary);
    if (test_) test_->check_token_ids(vocabulary);
  }
  if (config_.train_data.augment.enabled()) {  // Note [augmentation], on the model's input
    try {
      augmenter_.emplace(config_.train_data.augment, input);
    } catch (const std::invalid_argument& e) {
      const std::string keys = config_.augment_layers
                                   ? config_.augment_layers->path + " (Keras' random layers)"
                                   : "data.train.augment";
      throw ConfigError(config_.file + ": " + keys + ": " + e.what());
    }
  }
  positions_ = target_positions(loss_, model_->layers().back()->output_shape(),
                                model_->output_mask_origin());
  masked_positions_ = !model_->output_mask_origin().empty();
  counts_targets_ = counts_targets(config_, model_->output_mask_origin());
  model_->set_output_logits(loss_.fused_output());
  classes_ = model_->output_cols();
  if (loss_.kind() == LossKind::kBinaryCrossentropy &&
      model_->layers().back()->output_function() != OutputFunction::kSigmoid)
    throw ConfigError(config_.file +
                      ": loss: binary_crossentropy needs a model ending in sigmoid "
                      "(activation: sigmoid on the last layer), but it ends in " +
                      model_->layers().back()->type_name());
  if (loss_.pos_weight_count() > 0 && loss_.pos_weight_count() != classes_)
    throw ConfigError(config_.file +
                      ": loss.pos_weight: " + std::to_string(loss_.pos_weight_count()) +
                      " weights for a model with " + std::to_string(classes_) + " outputs");
  metrics_ = std::make_unique<MetricSet>(config_.metrics, loss_.kind(), classes_, positions_);
  set_up_callbacks();
  penalty_ = WeightPenalty(model_->param_entries());
  epoch_sums_.assign(1 + metrics_->sum_count(), 0.0);
  target_layout_ = choose_target_layout(config_, loss_, train_, test_, classes_, positions_);
  class_weights_ = class_weights(config_, target_layout_, train_, classes_);

  const int64_t rows = std::max(per_rank_batch_, config_.training.eval_batch_size);
  const int64_t target_width = target_width_per_row();
  // A batch's buffers hold, per row, the input on host and backend, the target, and each layer's
  // output and its gradient: refused naming the key before they are allocated.
  uint64_t floats_per_row = 2 * static_cast<uint64_t>(sample.numel() + target_width);
  for (const auto& layer : model_->layers())
    floats_per_row += 2 * static_cast<uint64_t>(layer->output_shape().numel());
  if (static_cast<uint64_t>(rows) > memory_limit_bytes() / 4 / floats_per_row) {
    const std::string key =
        rows == per_rank_batch_
            ? (t.batch_mode == BatchMode::kGlobal ? "global_batch_size" : "batch_size_per_rank")
            : "eval_batch_size";
    throw ConfigError(
        config_.file + ": training." + key + ": batches of " + std::to_string(rows) +
        " rows need " +
        std::to_string(static_cast<int64_t>(
            static_cast<double>(rows) * static_cast<double>(floats_per_row) * 4.0 / (1 << 20))) +
        " MiB of buffers per rank, more than this process's " +
        std::to_string(memory_limit_bytes() >> 20) + " MiB");
  }
  model_->reserve(rows);
  if (metrics_->needs_outputs()) host_outputs_.resize(static_cast<size_t>(rows * classes_));
  // On the CPU, batches are gathered straight into features_ (stage_batch).
  if (backend_.memory() != MemoryKind::kHost)
    host_features_.resize(static_cast<size_t>(rows * sample.numel()));
  host_targets_.resize(static_cast<size_t>(rows * target_width));
  host_row_weights_.resize(static_cast<size_t>(rows * positions_));
  features_ = DeviceBuffer(backend_, static_cast<size_t>(rows * sample.numel()));
  targets_ = DeviceBuffer(backend_, host_targets_.size());
  row_weights_ = DeviceBuffer(backend_, host_row_weights_.size());

  sampler_ = std::make_unique<DistributedSampler>(train_.size(), per_rank_batch_, world,
                                                  comm_.rank(), config_.seed, t.shuffle, t.tail);
  // Micro-batches left over at an epoch's end (fewer than accumulation_steps) are not used.
  steps_per_epoch_ = sampler_->steps_per_epoch() / accumulation_;
  if (steps_per_epoch_ == 0)
    throw DataError(train_.origin + ": " + std::to_string(train_.size()) +
                    " samples do not fill one step of " + std::to_string(accumulation_) +
                    " accumulated micro-batches of " + std::to_string(micro_batch()));
}

void Trainer::train_step() {
  auto t0 = Clock::now();
  auto lap = [&t0](double& into) {
    const auto t1 = Clock::now();
    into += std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
  };
  // After the last micro-batch, sync_->finish(), whose time is communication's but for the
  // gradients it computes (Note [split weight gradients]), which is backward's.
  const auto finish_lap = [&](bool last) {
    const double computed_before = sync_->compute_seconds();
    if (last) sync_->finish();
    lap(phase_times_.comm);
    const double computed = sync_->compute_seconds() - computed_before;
    phase_times_.comm -= computed;
    phase_times_.backward += computed;
  };
  if (step_observer_) step_observer_(completed_steps_);
  if (step_in_epoch_ == 0) {
    check_data_unchanged();
    sampler_->set_epoch(epoch_);
  }
  // Note [deferred readback]: the loss sums are read after backward and update are queued, unless
  // a metric reads each micro-batch's outputs anyway.
  const Readback readback = metrics_->needs_outputs() ? Readback::kNow : Readback::kLater;
  double loss_sum = 0;  // this rank's, for the non-finite report
  int64_t step_rows = 0;
  double step_counted = 0, step_total = 0;  // positions the loss counts: Note [masked positions]
  // Note [weight penalty]: rank 0 adds it, with each tensor's final gradient.
  const bool penalize = !penalty_.empty() && comm_.rank() == 0;
  double penalty = 0;
  if (penalize) penalty_.begin_step();
  // Each rank scales its loss by 1 / (samples of the step over all ranks), so the sum over ranks
  // is the mean over the step's samples, a partial last batch included.
  int64_t step_samples = 0;
  for (int64_t micro = 0; micro < accumulation_; ++micro)
    step_samples += sampler_->global_samples(step_in_epoch_ * accumulation_ + micro);
  InBackwardUpdate* const update_in_backward =
      step_update_->begin_step(learning_rate(optimizer_->steps_taken()));
  // Note [accumulation]: micro-batch j of step s is global micro-batch s * k + j of the epoch's
  // order, so k accumulated micro-batches cover exactly the samples of one k-times larger batch;
  // gradients add up locally and are reduced once, after the last.
  for (int64_t micro = 0; micro < accumulation_; ++micro) {
    const bool last = micro + 1 == accumulation_;
    const std::span<const int64_t> indices =
        sampler_->indices(step_in_epoch_ * accumulation_ + micro);
    const auto rows = static_cast<int64_t>(indices.size());
    // Note [gradient synchronization]: only the last micro-batch's gradients are final.
    size_t ready_calls = 0;
    const auto ready = [&](size_t offset) {
      if (profile_backward_)
        phase_times_.record_ready(ready_calls++, offset,
                                  std::chrono::duration<double>(Clock::now() - t0).count());
      if (penalize)
        penalty += penalty_.add_gradients(backend_, model_->params(), model_->grads(), offset);
      sync_->ready(offset);
    };
    // Note [dropout mask]: masks from (seed, epoch) and the samples' positions in the epoch.
    // Note [batch statistics]: batch normalization sums its statistics over the ranks.
    model_->set_pass({true, derive_seed(config_.seed, 3000 + static_cast<uint64_t>(epoch_)),
                      sampler_->first_position(step_in_epoch_ * accumulation_ + micro),
                      [this](std::span<double> sums) { comm_.all_reduce_sum(sums); },
                      last ? update_in_backward : nullptr});
    if (rows == 0) {
      // A rank with no samples in a partial last batch contributes zeros to the sum (tail:
      // partial allows no accumulation, so this is the step's only micro-batch), and joins the
      // model's collectives in the order the other ranks run them, buckets included.
      backend_.fill_zero(model_->grads().data(), model_->param_count());
      model_->join_without_rows(ready, [&] { step_total = global_count(0, step_samples); });
      model_->set_pass({});
      lap(phase_times_.backward);
      finish_lap(last);
      continue;
    }
    const float* row_weights = stage_batch(
        train_, indices, sampler_->first_position(step_in_epoch_ * accumulation_ + micro));
    lap(phase_times_.data);

    const float* output = model_->forward(features_.data(), rows);
    const double counted = count_targets(rows);
    step_total = accumulated_count(step_total, counted, step_samples);
    const LossStats micro_stats =
        compute_loss(output, row_weights, model_->output_grad(), step_total, rows, readback);
    if (readback == Readback::kNow) {
      loss_sum += micro_stats.loss_sum;
      add_batch(epoch_sums_, micro_stats, output, rows, counted);
    }
    step_rows += rows;
    step_counted += counted;
    lap(phase_times_.forward);
    model_->backward(rows, last ? ready : std::function<void(size_t)>{}, /*accumulate=*/micro > 0);
    model_->set_pass({});  // inference, for whatever runs the model next
    lap(phase_times_.backward);
    phase_times_.backward_update += step_update_->take_update_seconds();
    finish_lap(last);
  }
  settle_verdict();  // the last step's, whose update is done by now
  if (!apply_gradients()) ++skipped_in_epoch_;
  if (readback == Readback::kLater) {
    const LossStats stats = per_sample(backend_.take_loss_stats());  // this step's forward only
    loss_sum += stats.loss_sum;
    add_batch(epoch_sums_, stats, nullptr, step_rows, step_counted);
  }
  // The loss sums count the penalty once per sample, so that the epoch's loss is its mean.
  const double step_weight = step_total / static_cast<double>(positions_);
  loss_sum += penalty * step_weight;
  epoch_sums_[0] += penalty * step_weight;
  if (pending_verdict_) pending_verdict_->loss_sum = loss_sum;
  lap(phase_times_.optimizer);
  ++phase_times_.steps;

  ++completed_steps_;
  if (++step_in_epoch_ == steps_per_epoch_) {
    step_in_epoch_ = 0;
    ++epoch_;
  }
  const int64_t every = config_.training.check_replicas_every;
  if (every > 0 && completed_steps_ % every == 0) verify_replicas();
  log_step_loss(loss_sum, step_weight);
}

void Trainer::train_steps(int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    train_step();
    if (step_in_epoch_ == 0) std::fill(epoch_sums_.begin(), epoch_sums_.end(), 0.0);
  }
  settle_verdict();
}

void Trainer::fit(int64_t stop_after_steps) {
  const int64_t epochs = config_.training.epochs;
  const int64_t steps = steps_per_epoch_;
  log_run_header(steps);
  const CheckpointConfig& policy = checkpoint_policy_;
  verify_replicas();
  while (!complete()) {
    const int64_t epoch = epoch_;
    const auto start = Clock::now();
    progress_->start(epoch + 1, epochs, steps);
    int64_t steps_run = 0;
    bool stopped = false;
    while (epoch_ == epoch) {
      if (stop_after_steps >= 0 && completed_steps_ >= stop_after_steps) {
        progress_->clear();
        checkpoint_now();
        return;
      }
      train_step();
      ++steps_run;
      progress_->update(step_in_epoch_ == 0 ? steps : step_in_epoch_,
                        epoch_sums_[0] / samples_in(epoch_sums_));
      if (batch_observer_) report_batch();
      if ((stopped = stop_requested())) break;  // checkpointed below
      if (epoch_ == epoch && policy.every_steps > 0 && completed_steps_ % policy.every_steps == 0)
        checkpoint_now();
    }
    finish_epoch(epoch, seconds_since(start), steps_run);
    if (stop_after_callbacks(epoch_records_.back()) || stopped) break;  // checkpointed below
    // A step trigger that falls on the epoch's last step waits for the epoch's report.
    if ((policy.every_epochs > 0 && (epoch + 1) % policy.every_epochs == 0) ||
        (policy.every_steps > 0 && completed_steps_ % policy.every_steps == 0))
      checkpoint_now();
  }
  checkpoint_now();             // the parameters and their average, to train on from
  write_average_into_params();  // Keras' finalize_variable_values, before restore_best_weights
  log_average_written();
  restore_best_weights();
}

}  // namespace ddp
