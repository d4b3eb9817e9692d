#pragma once

#include <memory>
#include <optional>
#include <ostream>
#include <string>

#include "backend/backend.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "dist/communicator.h"
#include "dist/grad_reducer.h"
#include "nn/loss.h"
#include "nn/sequential.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "train/config.h"
#include "train/metrics.h"

namespace ddp {

// Reads one configured source; "{rank}" in paths becomes this rank's number.
Dataset load_dataset(const DataSourceConfig& source, int rank);

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
};

// Data-parallel training: every rank runs the same steps on its slice of each global batch,
// gradients are summed over ranks (each rank scales its loss by 1 / global batch, so the sum is
// the global mean), and every rank applies the same optimizer step.
class Trainer {
 public:
  Trainer(const Config& config, Communicator& comm, ComputeBackend& backend, Dataset train,
          std::optional<Dataset> test);

  // Where rank 0 reports: a log stream (null: silent), a live progress bar, a run directory
  // for metrics.jsonl (empty: none).
  void set_reporting(std::ostream* log, bool progress, const std::string& run_dir);

  void fit();                        // the remaining epochs of the configured run
  void train_steps(int64_t count);  // continues across epoch boundaries
  EvalResult evaluate(const Dataset& data);

  Sequential& model() { return *model_; }
  int64_t per_rank_batch() const { return per_rank_batch_; }
  int64_t global_batch() const { return per_rank_batch_ * comm_.size(); }
  int64_t steps_per_epoch() const { return sampler_->steps_per_epoch(); }
  int64_t completed_steps() const { return completed_steps_; }
  const std::vector<Bucket>& buckets() const { return reducer_->buckets(); }

 private:
  void validate_and_build();  // everything that can fail on bad input, before any collective
  LossStats train_step();
  std::string describe_batch() const;

  Config config_;
  Communicator& comm_;
  ComputeBackend& backend_;
  Dataset train_;
  std::optional<Dataset> test_;
  Loss loss_;
  int64_t per_rank_batch_ = 0;
  int64_t classes_ = 0;
  std::unique_ptr<Sequential> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  std::unique_ptr<DistributedSampler> sampler_;
  std::unique_ptr<GradReducer> reducer_;

  // Host staging and backend copies of one batch.
  std::vector<float> host_features_;  // (eval batch, sample shape)
  std::vector<float> host_targets_;   // (eval batch) or (eval batch, classes)
  DeviceBuffer features_;
  DeviceBuffer targets_;

  int64_t epoch_ = 0;  // 0-based position
  int64_t step_in_epoch_ = 0;
  int64_t completed_steps_ = 0;

  std::ostream* log_ = nullptr;
  std::unique_ptr<ProgressBar> progress_;
  std::unique_ptr<MetricsLog> metrics_log_;
};

}  // namespace ddp
