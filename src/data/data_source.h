#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/dataset.h"

namespace ddp {

// One configured data split (data.train, data.test).
struct DataSourceConfig {
  std::string path;  // "data.train", for messages
  std::string type;  // synthetic, idx, csv, npy, npz
  // synthetic
  int64_t samples = 0;
  int64_t features = 0;
  int64_t classes = 0;
  int64_t labels_per_sample = 0;   // > 0: multi-label (synthetic `labels`), instead of classes
  int64_t targets_per_sample = 0;  // > 0: regression (synthetic `targets`), instead of classes
  int64_t vocabulary = 0;          // > 0: token ids below it as features (make_synthetic_tokens)
  int64_t min_length = 0;          // > 0: texts of min_length to `features` ids, padded with 0
  bool per_step = false;           // a class per token (make_synthetic_tags), not one per text
  uint64_t seed = 0;
  // idx
  std::string images;
  std::string labels;
  bool normalize = false;  // divide bytes by 255
  // npy: files; npz: member names (without .npy) in `file`
  std::string features_array;
  std::string labels_array;
  // csv, npz
  std::string file;
  bool header = true;
  int64_t label_column = -1;
  std::vector<int64_t> label_columns;  // several: multi-label
  bool float_labels = false;           // csv label_type: float (regression targets)
  double scale = 1;
  AugmentConfig augment;  // data.train only: Note [augmentation]
  // Note [features as targets]: `targets_from: features`, each sample's features its targets.
  bool features_as_targets = false;
  std::string
      sample_weights;  // a .npy file of one weight per sample, or empty: Note [sample weights]
};

// data.train or data.test of a config (`seed`: synthetic data's default seed).
DataSourceConfig parse_data_source(ConfigNode node, uint64_t seed);

// Reads one configured source; "{rank}" in paths becomes this rank's number, so each rank can
// read a node-local copy.
Dataset load_dataset(const DataSourceConfig& source, int rank);
std::string expand_rank(const std::string& path, int rank);

}  // namespace ddp
