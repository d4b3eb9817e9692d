#pragma once
// Note [monitored values]: what early stopping and ReduceLROnPlateau watch, named as Keras names
// it: "loss", a configured metric, or either with "val_" for its value on the validation split.
// Lower is better for losses and MAE, higher for the others, unless `mode` says min or max. The
// first value is the first best, whatever it is; a later value improves on the best when it beats
// it by more than min_delta, which a NaN never does, and nothing beats a NaN best. That is Keras
// 3's rule (checked against keras.callbacks by tests/interop/keras_reference.py).
// Sums over ranks may round differently from rank to rank, so rank 0's value decides for all
// (Trainer::monitored_value broadcasts it).

#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <vector>

#include "train/metrics.h"

namespace ddp {

class Monitor {
 public:
  // mode: auto, min or max.
  Monitor(std::string name, const std::string& mode, double min_delta);

  const std::string& name() const { return name_; }
  bool higher_is_better() const { return higher_is_better_; }
  double min_delta() const { return min_delta_; }
  // Whether `value` improves on `best` (none yet: it does).
  bool improves(double value, std::optional<double> best) const;
  // Whether an epoch's record holds it: a val_ value only where the epoch was evaluated
  // (training.validation_freq); Keras' callbacks skip such epochs.
  bool reported_in(const EpochRecord& record) const {
    return !validation_ || record.val_loss.has_value();
  }
  // Its value in an epoch's record (which must report it: unreported() was empty).
  double value_in(const EpochRecord& record) const;
  // Why a run with these metrics, with or without validation data, does not report it; empty
  // when it does.
  std::string unreported(const std::vector<std::string>& metrics, bool validation) const;
  // "val_loss (lower is better)"
  std::string describe() const;

 private:
  std::string name_;
  bool validation_;       // "val_...": the value on the validation split
  std::string quantity_;  // the name without "val_": "loss" or a metric
  bool higher_is_better_;
  double min_delta_;
};

// JSON has no infinities or NaN: a monitored value as a checkpoint's state holds it (a number, or
// "nan", "inf", "-inf"), and back; throws std::runtime_error on anything else.
nlohmann::json value_to_json(double value);
double value_from_json(const nlohmann::json& json);

}  // namespace ddp
