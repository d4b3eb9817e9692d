// The Trainer's reports: how it splits the batch, the epoch's record (metrics summed over the
// ranks, evaluation), its log line, metrics.jsonl and TensorBoard.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "train/trainer.h"

namespace ddp {
namespace {

// Note [weight average] as the run's header describes it; "" without one.
std::string weight_average_note(const OptimizerConfig& o) {
  if (!o.use_ema) return "";
  std::string note = " (weights averaged: ema_momentum " + show_number(o.ema_momentum) +
                     ", written into the model at the end";
  if (o.ema_overwrite_frequency > 0)
    note += " and every " + std::to_string(o.ema_overwrite_frequency) + " steps";
  return note + ")";
}

}  // namespace

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

void Trainer::log_run_header(int64_t steps) const {
  if (!log_) return;
  *log_ << model_->summary() << "loss: " << Loss(config_.loss).name()  // as configured
        << (config_.label_smoothing > 0
                ? " (label smoothing " + show_number(config_.label_smoothing) + ")"
                : "")
        << (class_weights_.empty() ? "" : " (classes weighted in training)")
        << (train_.weighted() ? " (samples weighted)" : "") << ", optimizer: " << optimizer_->name()
        << (updates_in_backward() ? " (updates during backward)" : "")
        << weight_average_note(config_.optimizer)
        << (config_.optimizer.global_clipnorm > 0
                ? " (global_clipnorm " + show_number(config_.optimizer.global_clipnorm) + ")"
                : "")
        << ", " << describe_batch() << ", " << steps << " steps per epoch\n"
        << sync_->describe() << '\n';
  if (augmenter_) *log_ << augmenter_->describe() << '\n';
  if (plateau_) *log_ << plateau_->describe() << '\n';
  if (early_stopping_) *log_ << early_stopping_->describe() << '\n';
  *log_ << std::flush;
}

void Trainer::log_average_written() {
  if (!config_.optimizer.use_ema) return;
  std::string line = "weight average: written into the model (ema_momentum " +
                     show_number(config_.optimizer.ema_momentum) + ")";
  if (test_) {  // in the epoch lines' format
    const EvalResult averaged = evaluate(*test_);
    char value[64];
    std::snprintf(value, sizeof value, "; with it val_loss %.4f", averaged.loss);
    line += value;
    for (const MetricValue& m : averaged.metrics) {
      std::snprintf(value, sizeof value, ", val_%s %.4f", m.name.c_str(), m.value);
      line += value;
    }
  }
  if (log_) *log_ << line << '\n' << std::flush;
}

void Trainer::set_reporting(std::ostream* log, ProgressMode progress, const std::string& run_dir) {
  log_ = log;
  progress_ =
      std::make_unique<ProgressBar>(log ? *log : std::cout, log ? progress : ProgressMode::kOff);
  if (!run_dir.empty())
    metrics_log_ = std::make_unique<MetricsLog>(run_dir + "/metrics.jsonl", epoch_);
  if (!run_dir.empty() && config_.logging.tensorboard)
    tensorboard_ = std::make_unique<TensorBoardWriter>(run_dir + "/tensorboard", completed_steps_);
  epoch_start_phases_ = phase_times_;
}

// Collective when due (every rank runs it at the same steps): the step's loss over all ranks.
void Trainer::log_step_loss(double loss_sum, int64_t step_samples) {
  if (!config_.logging.tensorboard || completed_steps_ % config_.logging.every_steps != 0) return;
  comm_.all_reduce_sum(std::span<double>(&loss_sum, 1));
  if (!tensorboard_) return;
  tensorboard_->scalar("step/loss", completed_steps_,
                       loss_sum / static_cast<double>(std::max<int64_t>(step_samples, 1)));
  tensorboard_->scalar("step/learning_rate", completed_steps_,
                       learning_rate(optimizer_->steps_taken() - 1));
  tensorboard_->flush();
}

void Trainer::log_epoch(const EpochRecord& record, int64_t steps_run) {
  const PhaseTimes& now = phase_times_;
  const PhaseTimes& then = epoch_start_phases_;
  const double per_step_ms = 1e3 / static_cast<double>(std::max<int64_t>(steps_run, 1));
  if (tensorboard_) {
    TensorBoardWriter& tb = *tensorboard_;
    const int64_t step = completed_steps_;
    tb.scalar("epoch/loss", step, record.loss);
    for (const MetricValue& m : record.metrics) tb.scalar("epoch/" + m.name, step, m.value);
    if (record.val_loss) tb.scalar("epoch/val_loss", step, *record.val_loss);
    for (const MetricValue& m : record.val_metrics) tb.scalar("epoch/val_" + m.name, step, m.value);
    tb.scalar("epoch/samples_per_sec", step, record.samples_per_sec);
    tb.scalar("time/compute_ms_per_step", step,
              (now.data + now.forward + now.backward - then.data - then.forward - then.backward) *
                  per_step_ms);
    tb.scalar("time/exposed_communication_ms_per_step", step, (now.comm - then.comm) * per_step_ms);
    tb.scalar("time/optimizer_ms_per_step", step, (now.optimizer - then.optimizer) * per_step_ms);
    tb.flush();
  }
  epoch_start_phases_ = phase_times_;
}

void Trainer::report_batch() {
  // As finish_epoch computes the epoch's numbers, so that its last step's logs are the epoch's.
  std::vector<double> sums = epoch_sums_;
  comm_.all_reduce_sum(std::span<double>(sums));
  BatchLogs logs;
  logs.batch = (step_in_epoch_ == 0 ? steps_per_epoch_ : step_in_epoch_) - 1;
  logs.loss = sums[0] / samples_in(sums);
  logs.metrics = metrics_->values(std::span(sums).subspan(1));
  batch_observer_(logs);
}

bool Trainer::stop_requested() {
  if (!stop_check_) return false;
  double verdict = stop_check_() ? 1 : 0;              // every rank's check runs
  comm_.broadcast(std::span<double>(&verdict, 1), 0);  // rank 0's decides for all
  return verdict != 0;
}

void Trainer::finish_epoch(int64_t epoch, double train_seconds, int64_t steps_run) {
  settle_verdict();  // the epoch's last step's, before its parameters are evaluated
  const auto start = std::chrono::steady_clock::now();
  std::vector<double> sums = epoch_sums_;
  comm_.all_reduce_sum(std::span<double>(sums));
  std::fill(epoch_sums_.begin(), epoch_sums_.end(), 0.0);

  EpochRecord record;
  record.epoch = epoch + 1;
  record.epochs = config_.training.epochs;
  record.steps = steps_per_epoch_;
  record.steps_completed = epoch_ == epoch ? step_in_epoch_ : steps_per_epoch_;  // stopped in it
  record.skipped_steps = skipped_in_epoch_;
  skipped_in_epoch_ = 0;
  if (config_.optimizer.global_clipnorm > 0) record.clipped_steps = clipped_in_epoch_;
  clipped_in_epoch_ = 0;
  record.loss = sums[0] / samples_in(sums);
  record.learning_rate = learning_rate(optimizer_->steps_taken() - 1);
  record.metrics = metrics_->values(std::span(sums).subspan(1));
  record.samples_per_sec =
      static_cast<double>(steps_run * global_batch()) / std::max(train_seconds, 1e-9);
  if (test_ && config_.training.validates(epoch + 1)) {
    const EvalResult eval =
        config_.optimizer.validate_average ? evaluate_average(*test_) : evaluate(*test_);
    record.val_loss = eval.loss;
    record.val_metrics = eval.metrics;
  }
  verify_replicas();
  record.seconds = train_seconds +
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  record.unix_time =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  progress_->clear();
  if (log_) *log_ << format_epoch_line(record) << '\n' << std::flush;
  if (metrics_log_) metrics_log_->append(record);
  log_epoch(record, steps_run);
  epoch_records_.push_back(record);
}

}  // namespace ddp
