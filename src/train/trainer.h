#pragma once

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "comm/grad_sync.h"
#include "data/augment.h"
#include "data/data_source.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "nn/loss.h"
#include "nn/sequential.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/early_stopping.h"
#include "train/metrics.h"
#include "train/reduce_lr_on_plateau.h"
#include "train/tensorboard_writer.h"
#include "train/update_in_backward.h"
#include "train/weight_penalty.h"

namespace ddp {

// Seconds spent in each phase of the training steps since the last reset, this rank.
struct PhaseTimes {
  double data = 0;     // sampling, gathering and copying the batch
  double forward = 0;  // forward pass and loss
  double backward = 0;
  double backward_update = 0;  // of backward: its updates' thread-seconds, if timed
  double comm = 0;             // gradient all-reduce
  double optimizer = 0;
  int64_t steps = 0;
  // For the scaling model (ddp_scale): per ready(offset) call of the last backward, in call
  // order, the seconds from the start of that backward, summed over steps (every step makes the
  // same calls).
  std::vector<size_t> ready_offsets;
  std::vector<double> ready_after_backward_start;
  void record_ready(size_t call, size_t offset, double seconds) {
    if (call == ready_offsets.size()) {
      ready_offsets.push_back(offset);
      ready_after_backward_start.push_back(0);
    }
    ready_after_backward_start[call] += seconds;
  }
};

struct EvalResult {
  double loss = 0;
  std::vector<MetricValue> metrics;  // the configured ones
};

// Data-parallel training: every rank runs the same steps on its slice of each global batch,
// gradients are summed over ranks (each rank scales its loss by 1 / global batch, so the sum is
// the global mean), and every rank applies the same optimizer step. How the gradients travel is
// the GradSync's business (Note [gradient synchronization]); the loop is the same for all.
class Trainer {
 public:
  Trainer(const Config& config, Communicator& comm, ComputeBackend& backend, Dataset train,
          std::optional<Dataset> test);

  // Where rank 0 reports: a log stream (null: silent), a live progress bar, a run directory
  // for metrics.jsonl (empty: none). metrics.jsonl keeps the records of epochs already completed
  // by the restored state and drops later ones (from a run that went past the checkpoint).
  void set_reporting(std::ostream* log, ProgressMode progress, const std::string& run_dir);

  // Called on every rank at the configured checkpoint steps; it runs collectives (capture()).
  using CheckpointHook = std::function<void(Trainer&)>;
  void set_checkpointing(const CheckpointConfig& policy, CheckpointHook hook);

  // Called on every rank before each training step with the number of completed steps.
  void set_step_observer(std::function<void(int64_t)> observer) {
    step_observer_ = std::move(observer);
  }
  // Called on every rank after each training step with the epoch's running means (a small
  // all-reduce of the epoch's sums each step, only while an observer is set).
  void set_batch_observer(std::function<void(const BatchLogs&)> observer) {
    batch_observer_ = std::move(observer);
  }
  // Called on every rank after each epoch's report and callbacks, with its record; when it returns
  // true on rank 0, every rank stops training after this epoch (Keras' model.stop_training; not
  // kept in checkpoints: a resumed run trains its remaining epochs).
  void set_epoch_observer(std::function<bool(const EpochRecord&)> observer) {
    epoch_observer_ = std::move(observer);
  }
  // Called on every rank after each training step (after the batch observer); when it returns
  // true on rank 0, every rank ends the epoch after that step (its record covers the steps
  // trained, its evaluation and epoch-end callbacks run as after a whole epoch) and stops
  // training (Keras' model.stop_training set in a batch or epoch-begin hook).
  void set_stop_check(std::function<bool()> check) { stop_check_ = std::move(check); }
  // Note [rate set by a callback]: Keras' model.optimizer.learning_rate = rate, asked on this rank
  // by an observer; throws ConfigError naming optimizer.schedule unless the schedule is constant,
  // or where the rate is not a positive number (AdamW: rate x weight_decay < 1).
  void request_learning_rate(double rate);
  // Collective, at the same point on every rank (after the observers' calls): rank 0's request,
  // if it made one, becomes the rate of every later step, on every rank.
  void agree_on_learning_rate();
  // The rate the next step trains with.
  double next_learning_rate() const { return learning_rate(optimizer_->steps_taken()); }
  int64_t optimizer_steps() const { return optimizer_->steps_taken(); }
  // The rate agreed on from a callback's request, if any.
  std::optional<double> callback_learning_rate() const { return callback_rate_; }
  // Keras' fit(initial_epoch=...), before fit(): the position at the start of `epoch` (0-based),
  // as a run that had trained the epochs before it has (data order, dropout and augmentation
  // draws, schedules); the parameters and optimizer state stay as they are.
  void start_at_epoch(int64_t epoch);

  // Trains the remaining epochs of the configured run, or stops (with a checkpoint) once
  // `stop_after_steps` optimizer steps have been completed in total, when it is >= 0.
  void fit(int64_t stop_after_steps = -1);
  void train_steps(int64_t count);  // continues across epoch boundaries
  EvalResult evaluate(const Dataset& data);
  // Collective: the model's outputs (probabilities for a softmax model) for every sample of
  // `data`, (samples, outputs) row-major, on every rank; each rank computes its share of the rows.
  std::vector<float> predict(const Dataset& data);
  // Throws DataError naming data.origin where its samples do not fit the model's input, or (with
  // `labels`) its labels its outputs and loss, as the test split is checked.
  void check_fits_model(const Dataset& data, bool labels) const;
  const std::optional<Dataset>& test_data() const { return test_; }

  // Collective: the state of every rank's replica plus the global metric sums so far.
  TrainingState capture();
  // Continues from `state`; throws CheckpointError naming `origin` and the first mismatch when the
  // state does not belong to this model, optimizer, seed and batch configuration.
  void restore(const TrainingState& state, const std::string& origin);
  std::vector<TensorSignature> signature() const;         // the parameters
  std::vector<TensorSignature> buffer_signature() const;  // the running statistics
  std::vector<float> params_to_host();
  std::vector<float> buffers_to_host();
  // This rank only; callers broadcast first.
  void load_params(std::span<const float> params, std::span<const float> buffers);

  Sequential& model() { return *model_; }
  int64_t per_rank_batch() const { return per_rank_batch_; }
  // Samples per optimizer step over all ranks: micro-batch x ranks x accumulation steps.
  int64_t global_batch() const { return micro_batch() * accumulation_; }
  int64_t micro_batch() const { return per_rank_batch_ * comm_.size(); }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t completed_steps() const { return completed_steps_; }
  const PhaseTimes& phase_times() const { return phase_times_; }
  const GradSync& grad_sync() const { return *sync_; }
  // Note [update in backward]: whether this run updates parameters during backward.
  bool updates_in_backward() const { return step_update_->enabled(); }
  // The epochs this process completed in fit(), in order (every rank has the same records).
  const std::vector<EpochRecord>& epoch_records() const { return epoch_records_; }
  // Every configured epoch has been trained, or early stopping ended training (a resumed run may
  // already be complete).
  bool complete() const { return epoch_ >= config_.training.epochs || stopped_early(); }
  // Note [early stopping]: it ended training.
  bool stopped_early() const { return early_stopping_ && early_stopping_->stopped(); }
  size_t optimizer_state_bytes() {
    size_t bytes = 0;
    for (const StateTensor& t : optimizer_->state()) bytes += t.data.size() * sizeof(float);
    return bytes;
  }
  void reset_phase_times() { phase_times_ = {}; }
  // Profiles backward into phase_times(): the updates inside it (backward_update) and when each
  // ready() call comes (ready_after_backward_start, for ddp_scale). Two clock reads per update and
  // one per ready() call (~37 ns each on a Xeon VM) are ~2% of W1's ~20 us step, so only where
  // asked (ddp_bench).
  void profile_backward() {
    step_update_->set_timed(true);
    profile_backward_ = true;
  }

 private:
  void validate_and_build();  // everything that can fail on bad input, before any collective
  // Copies samples of `data` into the backend's batch buffers (features_, and targets_ unless
  // `targets` is false). With `augment_from` (training), the samples are augmented as the samples
  // at positions augment_from, +1, ... of this epoch (Note [augmentation]). Returns the rows'
  // weights for the loss (row_weights_: Note [sample weights], and for training Note [class
  // weights]), or null where every row weighs 1.
  const float* stage_batch(const Dataset& data, std::span<const int64_t> indices,
                           std::optional<int64_t> augment_from = std::nullopt, bool targets = true);
  const float* stage_rows(const Dataset& data, int64_t start, int64_t rows, bool targets = true);
  // This rank's contiguous, disjoint share [begin, end) of n rows (evaluate, predict).
  std::pair<int64_t, int64_t> rank_rows(int64_t n) const;
  // Note [mapped features]: before each epoch and each checkpoint.
  void check_data_unchanged() const {
    train_.check_unchanged();
    if (test_) test_->check_unchanged();
  }
  // The outputs for samples [first, first + count) of `data`; this rank alone.
  std::vector<float> predict_rows(const Dataset& data, int64_t first, int64_t count);
  void train_step();
  // Adds a batch's loss and metric sums to `sums` ([0] the loss), `counted` of its positions
  // (count_targets) as samples; reads `output` (backend memory) and the staged host targets when
  // a metric needs them.
  void add_batch(std::span<double> sums, const LossStats& stats, const float* output, int64_t rows,
                 double counted);
  double samples_in(std::span<const double> sums) const { return sums[1 + MetricSet::kSamples]; }
  // The loss of `rows` staged samples of `output`, its gradient into doutput (unless null) as part
  // of the mean over `mean_over` positions; its sums per sample (Note [targets per position]).
  LossStats compute_loss(const float* output, const float* row_weights, float* doutput,
                         double mean_over, int64_t rows, Readback readback);
  // Note [masked positions]: how many positions of the last forward's `rows` samples the loss
  // counts: all, or with a padding mask at the model's output its real ones, the staged targets of
  // the others first marked ignored.
  double count_targets(int64_t rows);
  // The step's count over all ranks: the step's samples' positions, or with a padding mask at the
  // output the sum of the ranks' count_targets (a collective: ranks without rows join with 0).
  double global_count(double counted, int64_t step_samples);
  // Note [masked positions]: the step's count so far over all ranks, `earlier` from the step's
  // micro-batches before this one and `counted` from this one; the gradients accumulated over the
  // earlier ones, a mean over `earlier` targets, are rescaled to one over the new count.
  double accumulated_count(double earlier, double counted, int64_t step_samples);
  LossStats per_sample(const LossStats& positions_stats) const;
  // Targets a staged row holds: its class indices, or a value per output.
  int64_t target_width_per_row() const {
    return target_layout_ == TargetLayout::kClassIndex ? positions_ : classes_;
  }
  // One optimizer step from the summed gradients; false when skipped as non-finite.
  bool apply_gradients();
  // Note [non-finite check]: ends the run if the last step's update read a non-finite gradient.
  void settle_verdict();
  std::vector<float> gather_state(const StateTensor& state);
  void checkpoint_now();
  void verify_replicas();  // check_replicas, at most once per step
  void finish_epoch(int64_t epoch, double train_seconds, int64_t steps_run);
  void report_batch();    // to batch_observer_, after a step
  bool stop_requested();  // collective: stop_check_'s verdict on rank 0, false without one
  // The epoch-end callbacks, in trainer_callbacks.cpp: their monitors checked against the
  // reports; the rate of the step after `completed_steps` (the schedule's, reduced on plateaus);
  // a monitored value as rank 0 has it; the epoch's verdicts (keeping early stopping's best
  // weights), true to stop; the best weights back at the end of training; their state into and
  // out of checkpoints.
  void set_up_callbacks();
  // The rate of the step after `steps_taken` optimizer steps. The schedule counts the
  // optimizer's steps, as Keras' count optimizer.iterations: a fit that goes on with the last
  // fit's optimizer (Note [model state]) goes on with its schedule.
  float learning_rate(int64_t steps_taken) const;
  // The schedule of this fit, once its position and the optimizer's steps are known (set-up,
  // restore, start_at_epoch): its whole run (the span of a cosine without decay_steps) ends with
  // the fit's last step, counted as the optimizer counts them.
  void start_schedule();
  double monitored_value(const Monitor& monitor, const EpochRecord& record);
  bool stop_after_callbacks(const EpochRecord& record);
  void restore_best_weights();
  // Note [weight average]: the parameters become the optimizer's average of them, where it keeps
  // one (collective).
  void write_average_into_params();
  // Keras' SwapEMAWeights: `data` evaluated with the average in place of the weights, which are
  // then put back (collective).
  EvalResult evaluate_average(const Dataset& data);
  // After fit() wrote the average into the parameters: logs it, with the test split's loss and
  // metrics under the averaged weights (collective: evaluates on every rank).
  void log_average_written();
  void capture_callbacks(TrainingState& s) const;
  void restore_callbacks(const TrainingState& s, const std::string& origin);
  std::string describe_batch() const;
  // The run's set-up as fit() logs it before its first epoch: model, loss, optimizer, batch, paths.
  void log_run_header(int64_t steps_per_epoch) const;

  Config config_;
  Communicator& comm_;
  ComputeBackend& backend_;
  Dataset train_;
  std::optional<Dataset> test_;
  Loss loss_;
  int64_t per_rank_batch_ = 0;
  int64_t accumulation_ = 1;
  int64_t steps_per_epoch_ = 0;    // optimizer steps
  int64_t classes_ = 0;            // the model's outputs per sample
  int64_t positions_ = 1;          // the loss's rows per sample: Note [targets per position]
  bool masked_positions_ = false;  // Note [masked positions]: a padding mask at the output
  bool counts_targets_ = false;    // it, or loss.ignore_class
  std::vector<float> host_mask_;   // the output's padding mask, (rows, positions)
  TargetLayout target_layout_ = TargetLayout::kClassIndex;
  std::unique_ptr<Sequential> model_;
  std::unique_ptr<GradSync> sync_;        // owns the gradient buffer the model writes
  std::unique_ptr<Optimizer> optimizer_;  // over sync_->shard() of the parameters
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<UpdateInBackward> step_update_;  // how the optimizer's update is applied
  std::unique_ptr<DistributedSampler> sampler_;

  // Host staging and backend copies of one batch.
  std::vector<float> host_features_;     // (eval batch, sample shape)
  std::vector<float> host_targets_;      // (eval batch) or (eval batch, classes)
  std::vector<float> class_weights_;     // Note [class weights]: per class, or empty
  std::vector<float> host_row_weights_;  // (eval batch): Note [sample weights]
  DeviceBuffer features_;
  DeviceBuffer targets_;
  DeviceBuffer row_weights_;
  std::vector<int64_t> row_indices_;

  int64_t epoch_ = 0;  // 0-based position
  int64_t step_in_epoch_ = 0;
  int64_t completed_steps_ = 0;
  std::unique_ptr<MetricSet> metrics_;
  WeightPenalty penalty_;  // Note [weight penalty]
  // This rank's sums of the epoch so far: the loss, then metrics_'s (Note [exact metrics]).
  std::vector<double> epoch_sums_;
  std::vector<float> host_outputs_;  // (batch, outputs) when a metric reads them

  PhaseTimes phase_times_;
  bool profile_backward_ = false;  // profile_backward()
  std::function<void(int64_t)> step_observer_;
  std::function<bool(const EpochRecord&)> epoch_observer_;
  std::function<void(const BatchLogs&)> batch_observer_;
  std::function<bool()> stop_check_;
  int64_t skipped_in_epoch_ = 0;
  int64_t clipped_in_epoch_ = 0;  // Note [gradient clipping]
  struct PendingVerdict {
    bool finite;  // what the update knew at once
    int64_t step, epoch;
    double loss_sum;  // this rank's, for the report
  };
  std::optional<PendingVerdict> pending_verdict_;  // the last step's, not yet settled
  CheckpointConfig checkpoint_policy_;
  CheckpointHook checkpoint_hook_;
  int64_t last_checkpoint_step_ = -1;
  int64_t last_replica_check_step_ = -1;

  std::ostream* log_ = nullptr;
  std::unique_ptr<ProgressBar> progress_;
  std::unique_ptr<MetricsLog> metrics_log_;
  // Note [TensorBoard events]: rank 0's writer (with a run dir); the phase times at the start of
  // the epoch, for its time split.
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  PhaseTimes epoch_start_phases_;
  void log_step_loss(double loss_sum, int64_t step_samples);
  void log_epoch(const EpochRecord& record, int64_t steps_run);
  std::vector<EpochRecord> epoch_records_;
  std::optional<Augmenter> augmenter_;  // Note [augmentation]
  std::optional<EarlyStopping> early_stopping_;
  std::optional<ReduceLrOnPlateau> plateau_;
  std::optional<double> requested_rate_, callback_rate_;  // Note [rate set by a callback]
  std::vector<float> best_params_, best_buffers_;         // host copies, with restore_best_weights
};

}  // namespace ddp
