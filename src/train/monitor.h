#pragma once
// Note [monitored values]: what early stopping and ReduceLROnPlateau watch, named as Keras names
// it: "loss", a configured metric, or either with "val_" for its value on the validation split.
// Lower is better for losses and MAE, higher for the others, unless `mode` says min or max. A
// value improves on the best so far when it beats it by more than min_delta; a NaN never does.
// Sums over ranks may round differently from rank to rank, so rank 0's value decides for all
// (Trainer::monitored_value broadcasts it).

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
  // Whether `value` improves on `best` (none yet: an infinitely bad one).
  bool improves(double value, std::optional<double> best) const;
  // Its value in an epoch's record (which must report it: unreported() was empty).
  double value_in(const EpochRecord& record) const;
  // Why a run with these metrics, with or without validation data, does not report it; empty
  // when it does.
  std::string unreported(const std::vector<std::string>& metrics, bool validation) const;
  // "val_loss (lower is better)"
  std::string describe() const;

 private:
  std::string name_;
  bool higher_is_better_;
  double min_delta_;
};

}  // namespace ddp
