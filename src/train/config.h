#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "comm/grad_sync.h"
#include "data/data_source.h"
#include "data/sampler.h"
#include "nn/loss.h"
#include "nn/model_builder.h"
#include "optim/lr_schedule.h"
#include "train/augment_layers.h"
#include "train/early_stopping.h"
#include "train/optimizer_config.h"
#include "train/reduce_lr_on_plateau.h"

namespace ddp {

enum class BatchMode {
  kGlobal,   // global_batch_size split over ranks: strong scaling, results independent of ranks
  kPerRank,  // batch_size_per_rank on every rank: weak scaling
};

struct TrainingConfig {
  int64_t epochs = 1;
  BatchMode batch_mode = BatchMode::kGlobal;
  int64_t batch_size = 32;  // global or per rank, by batch_mode
  TailPolicy tail = TailPolicy::kDrop;
  bool shuffle = true;
  int64_t eval_batch_size = 1024;  // per rank
  // Keras' validation_freq: the test split is evaluated after every this many epochs, or after
  // the 1-based epochs listed (validation_epochs, when not empty).
  int64_t validation_freq = 1;
  std::vector<int64_t> validation_epochs;
  bool validates(int64_t epoch) const {  // 1-based
    if (validation_epochs.empty()) return epoch % validation_freq == 0;
    return std::find(validation_epochs.begin(), validation_epochs.end(), epoch) !=
           validation_epochs.end();
  }
  // Note [CPU all-reduce]: measured on the 2-rank W2/W3 benchmarks, 4 MB buckets reduced after
  // backward beat both 25 MB buckets (W3 comm 34 -> 15 ms per step: Open MPI's large-message
  // algorithms are cache-unfriendly) and MPI_Iallreduce started during backward and polled
  // between layers (W3 20% slower: on one core per rank the reduction competes with backward
  // for the same core). Hence these defaults; overlap stays available for other machines. With
  // every rank on one host the shared-memory reduction (Note [shared-memory all-reduce]) runs
  // instead, where 1-64 MB buckets and overlap measured alike (W3, 2 ranks).
  GradSyncOptions grad_sync;         // allreduce, overlap, wire_dtype, zero, bucket_mb
  int64_t accumulation_steps = 1;    // micro-batches per optimizer step, one all-reduce
  std::string device = "auto";       // auto (a GPU when there is one), cpu, cuda
  int64_t check_replicas_every = 0;  // steps; 0: at the end of every epoch only
  bool flush_denormals = true;       // CPU: FTZ/DAZ, see make_cpu_backend
  // tf32: true (CUDA: TensorFloat-32 GEMMs, ~1e-3 relative error) or bf16_matmul: true (CPU and
  // CUDA: bfloat16 operands, Note [bf16 products]); fp32 otherwise.
  MatmulPrecision matmul = MatmulPrecision::kFloat32;
  bool skip_nonfinite = false;         // nonfinite: stop (default) or skip such steps
  bool update_in_backward = true;      // where the run allows it: Note [update in backward]
  int64_t threads_per_rank = 1;        // CPU: Note [threads per rank]
  double collective_timeout_s = 600;   // watchdog; 0 disables
  EarlyStoppingConfig early_stopping;  // Note [early stopping]
};

struct CheckpointConfig {
  int64_t every_steps = 0;   // 0: off
  int64_t every_epochs = 1;  // 0: off
  int64_t keep = 2;
  std::string dir;  // empty: <run dir>/checkpoints
};

// Note [TensorBoard events] (train/tensorboard_writer.h): rank 0's event files in the run dir.
struct LoggingConfig {
  bool tensorboard = false;
  int64_t every_steps = 10;  // the step loss and learning rate, every this many steps
};

struct Config {
  std::string file;  // where it came from, for messages
  uint64_t seed = 0;
  DataSourceConfig train_data;
  std::optional<DataSourceConfig> test_data;
  std::optional<std::vector<int64_t>> input_shape;
  std::vector<LayerSpec> layers;
  // Keras' random layers of model.layers, which are train_data's augmentation (Note
  // [augmentation layers]).
  std::optional<AugmentLayers> augment_layers;
  LossKind loss = LossKind::kSparseCategoricalCrossentropy;
  std::vector<float> loss_pos_weight;  // binary_crossentropy: per label; empty: all 1
  double label_smoothing = 0;          // categorical_crossentropy: see gather_batch
  // A weight per class for the training loss (Keras' fit(class_weight)); classes not given weigh
  // 1. Note [class weights].
  std::map<int64_t, float> class_weight;
  // sparse_categorical_crossentropy: labels of this class count nowhere, neither in the loss nor
  // in the metrics (Keras' ignore_class, PyTorch's ignore_index; Note [masked positions]).
  std::optional<int64_t> ignore_class;
  std::vector<std::string> metrics;  // metric_names(); default_metrics(loss) when not given
  OptimizerConfig optimizer;
  TrainingConfig training;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
  YAML::Node resolved;  // every key with its value in force, defaults included
};

// Where a config's data come from: its data section, or the caller's memory (the C++ API's
// arrays, api/keras.h), in which case a data section is refused and train_data says "memory".
enum class DataOrigin { kConfig, kMemory };

// Validates and converts a parsed YAML document; throws ConfigError naming file and key path.
Config parse_config(const YAML::Node& root, const std::string& file,
                    DataOrigin data = DataOrigin::kConfig);
// The model section alone (model.input and model.layers), as parse_config reads it; the other
// keys of `root` are ignored (a model described before its data and optimizer are).
Config parse_model_config(const YAML::Node& root, const std::string& file);
// The optimizer section alone, as parse_config reads it (the other keys of `root` are ignored).
OptimizerConfig parse_optimizer_config(const YAML::Node& root, const std::string& file);
// The loss a name the config accepts stands for (any other: mean squared error, "mse").
LossKind loss_kind(const std::string& name);
// Reads the file (YAML syntax errors are ConfigErrors too), applies --set overrides, parses.
Config load_config(const std::string& file, const std::vector<std::string>& overrides);

}  // namespace ddp
