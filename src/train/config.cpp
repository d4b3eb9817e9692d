#include "train/config.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <optional>

#include "core/error.h"
#include "core/input_file.h"
#include "core/spelling.h"
#include "train/config_reader.h"
#include "train/metric_set.h"
#include "train/model_config.h"

namespace ddp {
namespace {

TrainingConfig parse_training(ConfigNode node, const std::string& file) {
  TrainingConfig t;
  t.epochs = positive(node, "epochs", node.require<int64_t>("epochs"));
  const bool global = node.has("global_batch_size");
  const bool per_rank = node.has("batch_size_per_rank");
  if (global == per_rank)
    node.fail("",
              "give exactly one of global_batch_size (strong scaling) and "
              "batch_size_per_rank (weak scaling)");
  t.batch_mode = global ? BatchMode::kGlobal : BatchMode::kPerRank;
  const std::string key = global ? "global_batch_size" : "batch_size_per_rank";
  t.batch_size = positive(node, key, node.require<int64_t>(key));
  const std::string tail = node.choice("tail", {"drop", "pad", "partial"}, "drop");
  t.tail = tail == "pad"       ? TailPolicy::kPad
           : tail == "partial" ? TailPolicy::kPartial
                               : TailPolicy::kDrop;
  t.shuffle = node.get("shuffle", true);
  t.eval_batch_size = positive(node, "eval_batch_size", node.get<int64_t>("eval_batch_size", 1024));
  if (node.is_list("validation_freq")) {
    t.validation_epochs = node.get<std::vector<int64_t>>("validation_freq", {});
    if (t.validation_epochs.empty() ||
        std::any_of(t.validation_epochs.begin(), t.validation_epochs.end(),
                    [](int64_t e) { return e < 1; }))
      node.fail("validation_freq", "a list of the 1-based epochs to evaluate, each >= 1");
  } else {
    t.validation_freq = positive(node, "validation_freq", node.get<int64_t>("validation_freq", 1));
  }
  GradSyncOptions& sync = t.grad_sync;
  sync.config_file = file;
  sync.bucket_bytes = static_cast<size_t>(
      positive_number(node, "bucket_mb", node.get("bucket_mb", 4.0)) * 1024 * 1024);
  const std::string allreduce =
      node.choice("allreduce", {"auto", "shm", "mpi", "hierarchical", "nccl"}, "auto");
  sync.path = allreduce == "shm"            ? AllReduceChoice::kSharedMemory
              : allreduce == "mpi"          ? AllReduceChoice::kMpi
              : allreduce == "hierarchical" ? AllReduceChoice::kHierarchical
              : allreduce == "nccl"         ? AllReduceChoice::kNccl
                                            : AllReduceChoice::kAuto;
  const std::string algorithm = node.choice("mpi_allreduce", {"auto", "ring", "library"}, "auto");
  sync.large_sums = algorithm == "ring"      ? RingChoice::kRing
                    : algorithm == "library" ? RingChoice::kLibrary
                                             : RingChoice::kAuto;
  sync.overlap = node.get("overlap", false);
  sync.bf16_wire = node.choice("wire_dtype", {"fp32", "bf16"}, "fp32") == "bf16";
  const std::string zero = node.choice("zero", {"auto", "0", "1", "rows"}, "auto");
  sync.zero = zero == "0"      ? ZeroChoice::kOff
              : zero == "1"    ? ZeroChoice::kOn
              : zero == "rows" ? ZeroChoice::kRows
                               : ZeroChoice::kAuto;
  if (sync.zero == ZeroChoice::kOn && (sync.overlap || sync.bf16_wire))
    node.fail("zero",
              "ZeRO-1 reduce-scatters fp32 after backward: needs overlap: false and "
              "wire_dtype: fp32");
  t.device = node.choice("device", {"auto", "cpu", "cuda"}, "auto");
  t.accumulation_steps =
      positive(node, "accumulation_steps", node.get<int64_t>("accumulation_steps", 1));
  t.check_replicas_every = node.get<int64_t>("check_replicas_every", 0);
  if (t.check_replicas_every < 0) node.fail("check_replicas_every", "must be >= 0");
  t.flush_denormals = node.get("flush_denormals", true);
  const bool tf32 = node.get("tf32", false), bf16 = node.get("bf16_matmul", false);
  if (tf32 && bf16)
    node.fail("bf16_matmul", "and tf32 both set the products' precision: choose one");
  t.matmul = tf32   ? MatmulPrecision::kTf32
             : bf16 ? MatmulPrecision::kBf16
                    : MatmulPrecision::kFloat32;
  t.skip_nonfinite = node.choice("nonfinite", {"stop", "skip"}, "stop") == "skip";
  sync.sums_before_step = t.skip_nonfinite;  // Note [non-finite check]
  t.update_in_backward = node.get("update_in_backward", true);
  t.threads_per_rank = node.get<int64_t>("threads_per_rank", 1);
  if (t.threads_per_rank < 1 || t.threads_per_rank > 256)
    node.fail("threads_per_rank", "must be between 1 and 256");
  t.collective_timeout_s = node.get("collective_timeout_s", 600.0);
  if (t.collective_timeout_s < 0) node.fail("collective_timeout_s", "must be >= 0 (0: off)");
  if (node.has("early_stopping"))
    t.early_stopping = parse_early_stopping(node.child("early_stopping"));
  node.finish();
  return t;
}

CheckpointConfig parse_checkpoint(ConfigNode node) {
  CheckpointConfig c;
  c.every_steps = node.get<int64_t>("every_steps", 0);
  if (c.every_steps < 0) node.fail("every_steps", "must be >= 0");
  c.every_epochs = node.get<int64_t>("every_epochs", 1);
  if (c.every_epochs < 0) node.fail("every_epochs", "must be >= 0");
  c.keep = positive(node, "keep", node.get<int64_t>("keep", 2));
  c.dir = node.get<std::string>("dir", "");
  node.finish();
  return c;
}

LoggingConfig parse_logging(ConfigNode node) {
  LoggingConfig c;
  c.tensorboard = node.get("tensorboard", false);
  c.every_steps = positive(node, "every_steps", node.get<int64_t>("every_steps", 10));
  node.finish();
  return c;
}

}  // namespace

LossKind loss_kind(const std::string& name) {
  if (name == "sparse_categorical_crossentropy") return LossKind::kSparseCategoricalCrossentropy;
  if (name == "categorical_crossentropy") return LossKind::kCategoricalCrossentropy;
  if (name == "binary_crossentropy") return LossKind::kBinaryCrossentropy;
  return LossKind::kMeanSquaredError;
}

namespace {

// `loss: NAME`, or `loss: {type: NAME, pos_weight: [...]}` for binary_crossentropy's weights, or
// `{type: categorical_crossentropy, label_smoothing: e}` (Keras' CategoricalCrossentropy's),
// `from_logits: true` for a model without a final softmax, and
// `class_weight: [w0, w1, ...]` or `{class: weight, ...}` for the categorical cross-entropies,
// `ignore_class: -100` for the sparse one.
void parse_loss(ConfigNode& root, Config& config) {
  // "mse": Keras' short name for mean_squared_error.
  const std::vector<std::string> names = {"sparse_categorical_crossentropy",
                                          "categorical_crossentropy", "mean_squared_error", "mse",
                                          "binary_crossentropy"};
  if (!root.is_map("loss")) {
    config.loss = loss_kind(root.choice("loss", names));
    return;
  }
  ConfigNode node = root.child("loss");
  config.loss = loss_kind(node.choice("type", names));
  if (node.has("pos_weight")) {
    if (config.loss != LossKind::kBinaryCrossentropy)
      node.fail("pos_weight", "only binary_crossentropy weighs positive targets");
    for (const double w : node.require<std::vector<double>>("pos_weight")) {
      if (!(w > 0 && std::isfinite(w)))
        node.fail("pos_weight", "weights must be finite and > 0, got " + show_number(w));
      config.loss_pos_weight.push_back(static_cast<float>(w));
    }
  }
  if (node.has("label_smoothing")) {
    // Keras smooths one-hot targets only; the sparse loss's targets are class indices.
    if (config.loss != LossKind::kCategoricalCrossentropy)
      node.fail("label_smoothing",
                "only categorical_crossentropy smooths its targets (it takes the same integer "
                "labels as sparse_categorical_crossentropy)");
    config.label_smoothing =
        in_unit_interval(node, "label_smoothing", node.require<double>("label_smoothing"));
  }
  // Keras' from_logits: the categorical cross-entropies apply softmax themselves, fused with a
  // final softmax layer (whose outputs are probabilities) or to the outputs of a model without
  // one (logits). true only says which, and is checked.
  if (node.get("from_logits", false)) {
    if (config.loss == LossKind::kBinaryCrossentropy || config.loss == LossKind::kMeanSquaredError)
      node.fail("from_logits", config.loss == LossKind::kBinaryCrossentropy
                                   ? "binary_crossentropy takes a model ending in sigmoid, which "
                                     "it fuses; end the model in sigmoid instead"
                                   : "only the cross-entropies take logits");
    const LayerSpec* last = config.layers.empty() ? nullptr : &config.layers.back();
    if (last && (last->type == "softmax" || last->activation == "softmax"))
      node.fail("from_logits",
                "true, but the model ends in softmax, whose outputs are probabilities; drop the "
                "softmax (the loss applies it) or from_logits");
  }
  if (node.has("ignore_class")) {
    if (config.loss != LossKind::kSparseCategoricalCrossentropy)
      node.fail("ignore_class",
                "only sparse_categorical_crossentropy ignores a class of its "
                "labels (Keras' ignore_class, PyTorch's ignore_index)");
    config.ignore_class = node.require<int64_t>("ignore_class");
  }
  if (node.has("class_weight")) {
    std::map<int64_t, double> weights;
    if (node.is_map("class_weight")) {
      ConfigNode by_class = node.child("class_weight");
      for (const std::string& key : by_class.keys()) {
        char* end = nullptr;
        const long long c = std::strtoll(key.c_str(), &end, 10);
        if (key.empty() || *end != '\0')
          by_class.fail(key, "a class is an integer, got '" + key + "'");
        weights[c] = by_class.require<double>(key);
      }
      by_class.finish();
    } else {
      const auto list = node.require<std::vector<double>>("class_weight");
      for (size_t c = 0; c < list.size(); ++c) weights[static_cast<int64_t>(c)] = list[c];
    }
    for (const auto& [c, w] : weights) {
      if (c < 0) node.fail("class_weight", "classes are >= 0, got " + std::to_string(c));
      if (!(w > 0 && std::isfinite(w)))
        node.fail("class_weight", "weights must be finite and > 0, got " + show_number(w) +
                                      " for class " + std::to_string(c));
      config.class_weight[c] = static_cast<float>(w);
    }
  }
  node.finish();
}

// `metrics: [accuracy, f1]`: known names that go with the loss.
void parse_metrics(ConfigNode& root, Config& config) {
  config.metrics = root.get<std::vector<std::string>>("metrics", default_metrics(config.loss));
  for (const std::string& name : config.metrics) {
    const std::vector<std::string>& known = metric_names();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      const std::optional<std::string> meant = closest_match(name, known);
      std::string options;
      for (const std::string& k : known) options += (options.empty() ? "" : ", ") + k;
      root.fail("metrics", "unknown metric '" + name + "'" +
                               (meant ? ", did you mean '" + *meant + "'?" : "") +
                               " (expected some of: " + options + ")");
    }
    const std::string mismatch = metric_mismatch(name, config.loss);
    if (!mismatch.empty()) root.fail("metrics", mismatch);
    // Each is a column of the log and a key of the history.
    if (std::count(config.metrics.begin(), config.metrics.end(), name) > 1)
      root.fail("metrics", name + " is listed twice");
  }
}

}  // namespace

Config parse_config(const YAML::Node& root_node, const std::string& file, DataOrigin origin) {
  if (!root_node.IsMap()) throw ConfigError(file + ": expected a YAML mapping at the top level");
  Config config;
  config.file = file;
  config.resolved = YAML::Node(YAML::NodeType::Map);
  ConfigNode root(root_node, config.resolved, "", file);
  config.seed = static_cast<uint64_t>(root.get<int64_t>("seed", 0));

  if (origin == DataOrigin::kMemory) {
    if (root.has("data")) root.fail("data", "the data come from memory, not from the config");
    config.train_data.path = "data.train";
    config.train_data.type = "memory";
  } else {
    ConfigNode data = root.child("data");
    config.train_data = parse_data_source(data.child("train"), config.seed);
    if (data.has("test")) config.test_data = parse_data_source(data.child("test"), config.seed + 1);
    data.finish();
  }

  parse_model(root, config);
  if (config.augment_layers) {  // Note [augmentation layers]
    if (config.train_data.augment.enabled())
      throw ConfigError(file + ": " + config.augment_layers->path +
                        ": Keras' random layers and data.train.augment both augment the training "
                        "images: keep one");
    config.train_data.augment = data_augment(*config.augment_layers, config.layers);
  }
  // Synthetic labels are drawn from [0, classes): more classes than the model has outputs is a
  // config mistake, named here rather than as the first out-of-range label.
  const LayerSpec* last = config.layers.empty() ? nullptr : &config.layers.back();
  for (const DataSourceConfig* source :
       {&config.train_data, config.test_data ? &*config.test_data : nullptr}) {
    if (source && source->type == "synthetic" && last && last->type == "dense" &&
        source->classes > last->units)
      throw ConfigError(
          file + ": " + source->path + ".classes: " + std::to_string(source->classes) +
          " classes, but the model's last layer has " + std::to_string(last->units) + " units");
  }

  parse_loss(root, config);
  parse_metrics(root, config);
  config.optimizer = parse_optimizer(root.child("optimizer"));
  config.training = parse_training(root.child("training"), file);
  // Note [gradient clipping]: the norm is taken over the summed gradients before the step.
  if (config.optimizer.global_clipnorm > 0) config.training.grad_sync.sums_before_step = true;
  if (root.has("checkpoint")) {
    config.checkpoint = parse_checkpoint(root.child("checkpoint"));
  } else {
    YAML::Node empty(YAML::NodeType::Map);
    config.checkpoint =
        parse_checkpoint(ConfigNode(empty, config.resolved["checkpoint"], "checkpoint", file));
  }
  config.logging = parse_logging(root.optional_child("logging"));
  root.finish();
  return config;
}

Config parse_model_config(const YAML::Node& root_node, const std::string& file) {
  Config config;
  config.file = file;
  config.resolved = YAML::Node(YAML::NodeType::Map);
  ConfigNode root(root_node, config.resolved, "", file);
  parse_model(root, config);
  return config;
}

OptimizerConfig parse_optimizer_config(const YAML::Node& root_node, const std::string& file) {
  YAML::Node resolved(YAML::NodeType::Map);
  ConfigNode root(root_node, resolved, "", file);
  return parse_optimizer(root.child("optimizer"));
}

Config load_config(const std::string& file, const std::vector<std::string>& overrides) {
  expect_regular_file<ConfigError>(file);
  std::ifstream probe(file);
  if (!probe) throw ConfigError(file + ": cannot open config file");
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    throw ConfigError(file + ": YAML syntax error at line " + std::to_string(e.mark.line + 1) +
                      ", column " + std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  for (const std::string& assignment : overrides) apply_override(root, assignment);
  return parse_config(root, file);
}

}  // namespace ddp
