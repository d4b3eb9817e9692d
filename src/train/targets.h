#pragma once
// How a dataset's labels become a batch's targets under the configured loss, and the checks that
// the data, the loss and the metrics go together.

#include <cstdint>
#include <optional>

#include "data/dataset.h"
#include "nn/loss.h"
#include "train/config.h"

namespace ddp {

// The targets' layout for `train` (and `test`, which must be of the same kind) under `loss` with
// `outputs` model outputs. Throws ConfigError naming the loss or a metric that does not go with
// real-valued targets, DataError where the labels do not fit the outputs.
TargetLayout choose_target_layout(const Config& config, const Loss& loss, const Dataset& train,
                                  const std::optional<Dataset>& test, int64_t outputs);

}  // namespace ddp
