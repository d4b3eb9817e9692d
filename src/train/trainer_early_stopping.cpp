// The Trainer's side of early stopping (Note [early stopping]): the monitored value checked
// against the run's reports, the verdict after each epoch, and the best weights at the end.

#include <algorithm>

#include "core/error.h"
#include "train/trainer.h"

namespace ddp {

void Trainer::set_up_early_stopping() {
  const EarlyStoppingConfig& c = config_.training.early_stopping;
  if (!c.enabled) return;
  const bool validation = c.monitor.rfind("val_", 0) == 0;
  const std::string name = validation ? c.monitor.substr(4) : c.monitor;
  std::string reported = "loss";
  for (const std::string& metric : config_.metrics) reported += ", " + metric;
  const auto fail = [&](const std::string& why) {
    throw ConfigError(config_.file + ": training.early_stopping.monitor: " + why);
  };
  if (name != "loss" &&
      std::find(config_.metrics.begin(), config_.metrics.end(), name) == config_.metrics.end())
    fail("'" + c.monitor + "' is not reported; each epoch reports " + reported +
         (test_ ? " and their val_ versions" : ""));
  if (validation && !test_)
    fail("'" + c.monitor + "' needs validation data (data.test), and this run has none");
  early_stopping_.emplace(c);
}

bool Trainer::stop_early_after(const EpochRecord& record) {
  if (!early_stopping_) return false;
  const std::string& monitor = early_stopping_->config().monitor;
  double value = monitor == "loss" ? record.loss : record.val_loss.value_or(0);
  const bool validation = monitor.rfind("val_", 0) == 0;
  for (const MetricValue& m : validation ? record.val_metrics : record.metrics)
    if ((validation ? "val_" + m.name : m.name) == monitor) value = m.value;
  // Sums over ranks may round differently from rank to rank: rank 0's value decides for all.
  comm_.broadcast(std::span<double>(&value, 1), 0);
  const bool improved = early_stopping_->observe(record.epoch - 1, value);
  if (improved && early_stopping_->config().restore_best_weights) {
    best_params_ = params_to_host();
    best_buffers_ = buffers_to_host();
  }
  if (early_stopping_->stopped() && log_) *log_ << early_stopping_->stop_line() << '\n';
  return early_stopping_->stopped();
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

void Trainer::capture_early_stopping(TrainingState& s) const {
  if (!early_stopping_) return;
  s.early_stopping = early_stopping_->to_json();
  s.best_params = best_params_;
  s.best_buffers = best_buffers_;
}

void Trainer::restore_early_stopping(const TrainingState& s, const std::string& origin) {
  // A run without early stopping ignores a checkpoint's state; a run with it starts afresh from
  // a checkpoint without.
  if (!early_stopping_ || s.early_stopping.empty()) return;
  const auto fail = [&origin](const std::string& what) {
    return CheckpointError(origin + ": " + what);
  };
  try {
    early_stopping_->restore_json(s.early_stopping);
  } catch (const std::runtime_error& e) {
    throw fail(e.what());
  }
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
