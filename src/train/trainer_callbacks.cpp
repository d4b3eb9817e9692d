// The Trainer's epoch-end callbacks, Keras' EarlyStopping (Note [early stopping]) and
// ReduceLROnPlateau (Note [reduce on plateau]): their monitors checked against what the run
// reports, their verdicts after each epoch, the best weights at the end, and their state in
// checkpoints (Note [callback state]); and the learning rate an API callback sets.
//
// Note [rate set by a callback]: Keras' callbacks that schedule the rate themselves
// (LearningRateScheduler in on_epoch_begin, ReduceLROnPlateau in on_epoch_end, or a user's in
// any hook) assign model.optimizer.learning_rate; the API passes the assignment to
// request_learning_rate() and, after each observer call, calls agree_on_learning_rate() on every
// rank, which broadcasts rank 0's request: from then on every step of every rank trains with it,
// as model.stop_training on rank 0 stops every rank, so ranks whose callbacks disagree still
// hold one model. Keras refuses to set a rate its optimizer's LearningRateSchedule computes; so
// does this, for any schedule but a constant one without warm-up. The rate travels in
// checkpoints beside the callbacks' state.

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "train/trainer.h"

namespace ddp {

namespace {

constexpr const char* kEarlyStopping = "early_stopping";
constexpr const char* kPlateau = "reduce_lr_on_plateau";
constexpr const char* kCallbackRate = "learning_rate_set_by_callback";

bool constant_schedule(const LrScheduleSpec& s) {
  return s.type == "constant" && s.warmup_steps == 0;
}

double rate_from_json(const std::string& text) {
  double rate = 0;
  try {
    rate = nlohmann::json::parse(text).get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("the learning rate a callback set: ") + e.what());
  }
  if (!(std::isfinite(rate) && rate > 0))
    throw std::runtime_error("the learning rate a callback set is not a positive number");
  return rate;
}

}  // namespace

void Trainer::set_up_callbacks() {
  const auto check = [this](const Monitor& monitor, const std::string& key) {
    const std::string why = monitor.unreported(config_.metrics, test_.has_value());
    if (!why.empty()) throw ConfigError(config_.file + ": " + key + ": " + why);
  };
  if (config_.training.early_stopping.enabled) {
    early_stopping_.emplace(config_.training.early_stopping);
    check(early_stopping_->monitor(), "training.early_stopping.monitor");
  }
  if (config_.optimizer.plateau.enabled) {
    plateau_.emplace(config_.optimizer.plateau, config_.optimizer.schedule.base_lr);
    check(plateau_->monitor(), "optimizer.schedule.monitor");
  }
}

void Trainer::request_learning_rate(double rate) {
  const std::string key = config_.file + ": optimizer.schedule";
  const LrScheduleSpec& schedule = config_.optimizer.schedule;
  if (!constant_schedule(schedule))
    throw ConfigError(key + ": the learning rate is the " + schedule.type + " schedule's" +
                      (schedule.warmup_steps != 0 ? " (with warm-up)" : "") +
                      "; a callback sets it only under a constant schedule (Keras refuses to set "
                      "a LearningRateSchedule's rate too)");
  if (!(std::isfinite(rate) && rate > 0))
    throw ConfigError(config_.file + ": optimizer.learning_rate: a callback set it to " +
                      show_number(rate) + "; it must be a positive number");
  if (!config_.optimizer.rate_fits_decay(rate))
    throw ConfigError(config_.file + ": optimizer.learning_rate: a callback set it to " +
                      show_number(rate) + ", whose product with weight_decay must be < 1");
  requested_rate_ = rate;
}

void Trainer::agree_on_learning_rate() {
  double rate = requested_rate_.value_or(std::numeric_limits<double>::quiet_NaN());
  comm_.broadcast(std::span<double>(&rate, 1), 0);
  requested_rate_.reset();
  if (!std::isnan(rate)) callback_rate_ = rate;
}

void Trainer::start_schedule() {
  LrScheduleSpec schedule = config_.optimizer.schedule;
  schedule.total_steps =
      optimizer_->steps_taken() + config_.training.epochs * steps_per_epoch_ - completed_steps_;
  schedule_ = std::make_unique<LrSchedule>(schedule);
}

float Trainer::learning_rate(int64_t steps_taken) const {
  if (callback_rate_) return static_cast<float>(*callback_rate_);
  const float rate = schedule_->at(steps_taken);
  return plateau_ ? static_cast<float>(rate * plateau_->scale()) : rate;
}

double Trainer::monitored_value(const Monitor& monitor, const EpochRecord& record) {
  double value = monitor.value_in(record);
  // Note [monitored values]: rank 0's value decides for every rank.
  comm_.broadcast(std::span<double>(&value, 1), 0);
  return value;
}

bool Trainer::stop_after_callbacks(const EpochRecord& record) {
  const int64_t epoch = record.epoch - 1;
  // An epoch not evaluated (training.validation_freq) leaves val_ monitors as they were.
  if (plateau_ && plateau_->monitor().reported_in(record) &&
      plateau_->observe(monitored_value(plateau_->monitor(), record)) && log_)
    *log_ << plateau_->reduce_line(epoch) << '\n';
  bool stop = false;
  if (early_stopping_ && early_stopping_->monitor().reported_in(record)) {
    const bool improved =
        early_stopping_->observe(epoch, monitored_value(early_stopping_->monitor(), record));
    if (improved && early_stopping_->config().restore_best_weights) {
      best_params_ = params_to_host();
      best_buffers_ = buffers_to_host();
    }
    if (early_stopping_->stopped() && log_) *log_ << early_stopping_->stop_line() << '\n';
    stop = early_stopping_->stopped();
  }
  if (epoch_observer_) {
    double verdict = epoch_observer_(record) ? 1 : 0;    // every rank's observer runs
    comm_.broadcast(std::span<double>(&verdict, 1), 0);  // rank 0's verdict decides for all
    stop = stop || verdict != 0;
  }
  return stop;
}

void Trainer::restore_best_weights() {
  if (!early_stopping_ || best_params_.empty()) return;
  load_params(best_params_, best_buffers_);
  const EarlyStopping::State& s = early_stopping_->state();
  if (log_)
    *log_ << "early stopping: restored the weights of epoch " << s.best_epoch + 1 << ", the best "
          << early_stopping_->config().monitor << " (" << show_number(s.best) << ")\n"
          << std::flush;
}

void Trainer::capture_callbacks(TrainingState& s) const {
  if (plateau_) s.callbacks[kPlateau] = plateau_->to_json();
  if (callback_rate_) s.callbacks[kCallbackRate] = nlohmann::json(*callback_rate_).dump();
  if (!early_stopping_) return;
  s.callbacks[kEarlyStopping] = early_stopping_->to_json();
  s.best_params = best_params_;
  s.best_buffers = best_buffers_;
}

void Trainer::restore_callbacks(const TrainingState& s, const std::string& origin) {
  // A callback the run does not have ignores a checkpoint's state; one the checkpoint lacks
  // starts afresh.
  const auto fail = [&origin](const std::string& what) {
    return CheckpointError(origin + ": " + what);
  };
  const auto saved = [&s](const char* name) -> const std::string* {
    const auto it = s.callbacks.find(name);
    return it == s.callbacks.end() ? nullptr : &it->second;
  };
  try {
    if (plateau_ && saved(kPlateau)) plateau_->restore_json(*saved(kPlateau));
    // Under another schedule than the one that let a callback set it, the schedule's rate.
    if (saved(kCallbackRate) && constant_schedule(config_.optimizer.schedule))
      callback_rate_ = rate_from_json(*saved(kCallbackRate));
    if (early_stopping_ && saved(kEarlyStopping))
      early_stopping_->restore_json(*saved(kEarlyStopping));
  } catch (const std::runtime_error& e) {
    throw fail(e.what());
  }
  if (!early_stopping_ || !saved(kEarlyStopping)) return;
  const bool has_best = early_stopping_->state().best_epoch >= 0;
  if (early_stopping_->config().restore_best_weights && has_best && s.best_params.empty())
    throw fail(
        "early stopping: restore_best_weights is on, but the checkpoint holds no best weights "
        "(written with it off)");
  if (!s.best_params.empty() && s.best_buffers.size() != s.buffers.size())
    throw fail("early stopping: the best weights lack their " + std::to_string(s.buffers.size()) +
               " buffer values");
  best_params_ = s.best_params;
  best_buffers_ = s.best_buffers;
}

}  // namespace ddp
