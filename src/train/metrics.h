#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "train/metric_set.h"

namespace ddp {

// Global (all-rank) numbers of one epoch.
struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  int64_t epochs = 0;
  int64_t steps = 0;
  int64_t steps_completed = 0;  // steps, or fewer where training stopped during the epoch
  double loss = 0;
  std::vector<MetricValue> metrics;  // the configured ones, on the training batches
  std::optional<double> val_loss;
  std::vector<MetricValue> val_metrics;  // on the test split, when there is one
  double samples_per_sec = 0;            // training samples of all ranks / training time
  double seconds = 0;                    // whole epoch, evaluation included
  double unix_time = 0;       // when the epoch ended, evaluation included (time-to-accuracy)
  int64_t skipped_steps = 0;  // non-finite steps skipped (training.nonfinite: skip)
  std::optional<int64_t> clipped_steps;  // with optimizer.global_clipnorm: steps it scaled
  double learning_rate = 0;  // of the epoch's last step (schedules, Note [reduce on plateau])
};

// Keras' batch-level logs (on_train_batch_end): the epoch's running means up to and with one
// training step, over all ranks; the epoch's last step's are its EpochRecord's loss and metrics.
struct BatchLogs {
  int64_t batch = 0;  // 0-based within the epoch
  double loss = 0;
  std::vector<MetricValue> metrics;
};

// "Epoch 3/10 - 31/31 steps - loss: 2.2841 - accuracy: 0.1421 - ... - 1234567 samples/s - 0.01s"
std::string format_epoch_line(const EpochRecord& record);

// The closing lines of a run from the epochs this process ran: how many, wall time, the last
// epoch's metrics, the best validation (or training) value of the first metric and where, mean
// samples/s.
// "done: nothing left to train" when `records` is empty.
std::string format_summary(const std::vector<EpochRecord>& records, double wall_seconds);

// metrics.jsonl: one JSON object per epoch, flushed as it is written.
class MetricsLog {
 public:
  // Keeps the records of epochs 1..keep_epochs already in the file (a resumed run) and drops the
  // rest, then appends.
  MetricsLog(const std::string& path, int64_t keep_epochs);
  void append(const EpochRecord& record);

 private:
  std::string path_;
  std::ofstream out_;
};

// A Keras-like live progress line, drawn only when enabled (rank 0 on a terminal).
// Progress inside an epoch: a bar redrawn in place (for a terminal), or a plain line every
// kLineInterval once an epoch runs that long (for logs and mpirun, where a silent long epoch looks
// hung and a bar's carriage returns would garble the file).
enum class ProgressMode { kOff, kBar, kLines };

class ProgressBar {
 public:
  static constexpr std::chrono::seconds kLineInterval{10};
  ProgressBar(std::ostream& out, ProgressMode mode,
              std::chrono::steady_clock::duration line_interval = kLineInterval)
      : out_(out), mode_(mode), line_interval_(line_interval) {}
  void start(int64_t epoch, int64_t epochs, int64_t steps);
  void update(int64_t done_steps, double running_loss);
  void clear();

 private:
  std::ostream& out_;
  ProgressMode mode_;
  std::chrono::steady_clock::duration line_interval_;
  int64_t epoch_ = 0;
  int64_t epochs_ = 0;
  int64_t steps_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace ddp
