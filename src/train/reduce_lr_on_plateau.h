#pragma once
// Note [reduce on plateau]: Keras' ReduceLROnPlateau callback, as the learning-rate schedule
// `optimizer.schedule: {type: reduce_on_plateau}`. After each epoch's report its monitored value
// (Note [monitored values]; Keras' defaults: val_loss, min_delta 1e-4) is compared with the best
// so far; once `patience` epochs in a row have not improved on it, the learning rate is multiplied
// by `factor` (not below min_lr), and then `cooldown` epochs pass before epochs count again. Each
// step's rate is the schedule's (with its warm-up) times the factors so far. The state (the best
// value, the wait, the cooldown left, the rate) travels in checkpoints (Note [callback state]), so
// a resumed run lowers the rate where the uninterrupted one does.

#include <cstdint>
#include <optional>
#include <string>

#include "train/config_reader.h"
#include "train/monitor.h"

namespace ddp {

struct PlateauConfig {  // Keras' defaults
  bool enabled = false;
  std::string monitor = "val_loss";
  double factor = 0.1;
  int64_t patience = 10;
  double min_delta = 1e-4;
  int64_t cooldown = 0;
  double min_lr = 0;
  std::string mode = "auto";
};

// The keys of a reduce_on_plateau schedule (the caller reads the others and finishes the node).
PlateauConfig parse_plateau(ConfigNode& schedule, double learning_rate);

class ReduceLrOnPlateau {
 public:
  struct State {
    std::optional<double> best;
    int64_t wait = 0;
    int64_t cooldown_left = 0;
    double lr;  // the rate the schedule's base rate has come down to
  };

  ReduceLrOnPlateau(const PlateauConfig& config, double base_lr);

  // The monitored value of the epoch that just ended: whether it lowered the rate.
  bool observe(double value);
  // What multiplies the schedule's rate.
  double scale() const { return state_.lr / base_lr_; }
  const Monitor& monitor() const { return monitor_; }
  const State& state() const { return state_; }

  // "Epoch 5: ReduceLROnPlateau reducing learning rate to 0.0001." (Keras' line)
  std::string reduce_line(int64_t epoch) const;
  // "reduce on plateau: val_loss (lower is better), factor 0.1, patience 10, ..."
  std::string describe() const;

  // The state as a checkpoint holds it (JSON, with the monitor), and back: throws
  // std::runtime_error naming what is wrong, or where it monitors something else.
  std::string to_json() const;
  void restore_json(const std::string& json);

 private:
  PlateauConfig config_;
  double base_lr_;
  Monitor monitor_;
  State state_;
};

}  // namespace ddp
