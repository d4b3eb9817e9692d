#pragma once
// Note [early stopping]: Keras' EarlyStopping callback, as `training.early_stopping`. After each
// epoch's report its monitored value (Note [monitored values]) is compared with the best so far:
// an improvement makes it the best and resets the wait; otherwise the epoch waits, and once
// `patience` epochs in a row have waited (and it is not the first epoch) training stops. With a
// baseline, an improvement restarts the wait only if it also beats the baseline, so a run that
// never gets past the baseline stops after `patience` epochs (improving epochs never stop it, as
// in Keras); epochs before start_from_epoch are not watched at all. With
// restore_best_weights the model ends training with the best epoch's weights and batch-norm
// statistics, stopped or not (Keras 3); the optimizer's state stays the last epoch's. The state
// (the best value and its epoch, the wait, whether stopped) and the best weights travel in
// checkpoints (Note [callback state]), so a resumed run stops where the uninterrupted one does and
// ends with the same weights; a stopped run has nothing left to train.

#include <cstdint>
#include <optional>
#include <string>

#include "train/config_reader.h"
#include "train/monitor.h"

namespace ddp {

struct EarlyStoppingConfig {
  bool enabled = false;
  std::string monitor = "val_loss";
  int64_t patience = 0;       // epochs without improvement before stopping
  double min_delta = 0;       // smaller changes are no improvement
  std::string mode = "auto";  // min, max, or auto: min for a loss and MAE, max for the others
  bool restore_best_weights = false;
  std::optional<double> baseline{};  // a value the monitored one must beat to restart the wait
  int64_t start_from_epoch = 0;      // 0-based epochs before it are a warm-up, not watched
};

// Reads `training.early_stopping` (a mapping; all keys optional).
EarlyStoppingConfig parse_early_stopping(ConfigNode node);

class EarlyStopping {
 public:
  struct State {
    double best = 0;          // meaningful once best_epoch >= 0
    int64_t best_epoch = -1;  // 0-based; -1 before any
    int64_t wait = 0;         // epochs since the best
    int64_t stopped_epoch = -1;
  };

  explicit EarlyStopping(const EarlyStoppingConfig& config);

  // The monitored value of epoch `epoch` (0-based): whether it is the new best.
  bool observe(int64_t epoch, double value);
  bool stopped() const { return state_.stopped_epoch >= 0; }
  const State& state() const { return state_; }
  const EarlyStoppingConfig& config() const { return config_; }
  const Monitor& monitor() const { return monitor_; }

  // "early stopping: on val_loss (lower is better), patience 3, min_delta 0.01, restoring the best
  // epoch's weights at the end"
  std::string describe() const;
  // "Epoch 7: early stopping: val_loss has not improved on 0.3012 (epoch 4) for 3 epochs"
  // (with min_delta: "... (epoch 4) by more than 0.01 for 3 epochs"; short of a baseline:
  // "val_loss has not beaten the baseline 0.3 in 3 epochs (best 0.3012, epoch 4)")
  std::string stop_line() const;

  // The state as a checkpoint's meta holds it (JSON, with the monitor), and back: throws
  // std::runtime_error naming what is wrong, or where it monitors something else.
  std::string to_json() const;
  void restore_json(const std::string& json);

 private:
  EarlyStoppingConfig config_;
  Monitor monitor_;
  State state_;
};

}  // namespace ddp
