#include "api/keras.h"

#include <iostream>
#include <utility>

#include "comm/agreement.h"
#include "comm/launch.h"
#include "core/error.h"
#include "data/data_source.h"
#include "train/config.h"
#include "train/config_reader.h"
#include "train/session.h"

namespace ddp::keras {
namespace {

// The name errors carry in place of a config file's.
const char* const kOrigin = "Sequential";

YAML::Node map(std::initializer_list<std::pair<const char*, YAML::Node>> entries) {
  YAML::Node node(YAML::NodeType::Map);
  for (const auto& [key, value] : entries) node[key] = value;
  return node;
}

Spec pooling(const char* type, int64_t pool_size) {
  return {map({{"type", YAML::Node(type)}, {"pool_size", YAML::Node(pool_size)}})};
}

Dataset to_dataset(const Arrays& arrays, const std::string& origin) {
  Dataset data;
  data.origin = origin;
  data.sample_shape = Shape(arrays.sample_shape);
  const int64_t per_sample = data.sample_shape.numel();
  if (arrays.sample_shape.empty() || per_sample <= 0)
    throw ConfigError(origin + ": sample_shape must be non-empty with dimensions > 0");
  if (static_cast<int64_t>(arrays.features.size()) !=
      per_sample * static_cast<int64_t>(arrays.labels.size()))
    throw DataError(origin + ": " + std::to_string(arrays.features.size()) + " features for " +
                    std::to_string(arrays.labels.size()) + " labels of " +
                    std::to_string(per_sample) + " features each");
  data.features = arrays.features;
  data.labels = arrays.labels;
  return data;
}

}  // namespace

Runtime::Runtime(int* argc, char*** argv) : comm_(connect(argc, argv, mpi_)) {}
Runtime::~Runtime() = default;

Spec Dense(int64_t units, const std::string& activation) {
  return {map({{"type", YAML::Node("dense")},
               {"units", YAML::Node(units)},
               {"activation", YAML::Node(activation)}})};
}
Spec Conv2D(int64_t filters, int64_t kernel_size, const std::string& activation,
            const std::string& padding) {
  return {map({{"type", YAML::Node("conv2d")},
               {"filters", YAML::Node(filters)},
               {"kernel_size", YAML::Node(kernel_size)},
               {"activation", YAML::Node(activation)},
               {"padding", YAML::Node(padding)}})};
}
Spec MaxPooling2D(int64_t pool_size) { return pooling("max_pooling2d", pool_size); }
Spec AveragePooling2D(int64_t pool_size) { return pooling("average_pooling2d", pool_size); }
Spec GlobalAveragePooling2D() { return {map({{"type", YAML::Node("global_average_pooling2d")}})}; }
Spec Flatten() { return {map({{"type", YAML::Node("flatten")}})}; }
Spec Dropout(double rate) {
  return {map({{"type", YAML::Node("dropout")}, {"rate", YAML::Node(rate)}})};
}
Spec BatchNormalization(bool sync) {
  return {map({{"type", YAML::Node("batch_normalization")}, {"sync", YAML::Node(sync)}})};
}

Spec Adam(double learning_rate) {
  return {map({{"type", YAML::Node("adam")}, {"learning_rate", YAML::Node(learning_rate)}})};
}
Spec AdamW(double learning_rate, double weight_decay) {
  return {map({{"type", YAML::Node("adamw")},
               {"learning_rate", YAML::Node(learning_rate)},
               {"weight_decay", YAML::Node(weight_decay)}})};
}
Spec CategoricalCrossentropy(double label_smoothing) {
  return {map({{"type", YAML::Node("categorical_crossentropy")},
               {"label_smoothing", YAML::Node(label_smoothing)}})};
}
Spec EarlyStopping(const std::string& monitor, int64_t patience, double min_delta,
                   bool restore_best_weights, const std::string& mode,
                   std::optional<double> baseline, int64_t start_from_epoch) {
  Spec spec{map({{"type", YAML::Node("early_stopping")},
                 {"monitor", YAML::Node(monitor)},
                 {"patience", YAML::Node(patience)},
                 {"min_delta", YAML::Node(min_delta)},
                 {"restore_best_weights", YAML::Node(restore_best_weights)},
                 {"mode", YAML::Node(mode)},
                 {"start_from_epoch", YAML::Node(start_from_epoch)}})};
  if (baseline) spec.node["baseline"] = *baseline;
  return spec;
}
Spec ReduceLROnPlateau(const std::string& monitor, double factor, int64_t patience,
                       double min_delta, int64_t cooldown, double min_lr, const std::string& mode) {
  return {map({{"type", YAML::Node("reduce_on_plateau")},
               {"monitor", YAML::Node(monitor)},
               {"factor", YAML::Node(factor)},
               {"patience", YAML::Node(patience)},
               {"min_delta", YAML::Node(min_delta)},
               {"cooldown", YAML::Node(cooldown)},
               {"min_lr", YAML::Node(min_lr)},
               {"mode", YAML::Node(mode)}})};
}
Spec SGD(double learning_rate, double momentum, bool nesterov) {
  return {map({{"type", YAML::Node("sgd")},
               {"learning_rate", YAML::Node(learning_rate)},
               {"momentum", YAML::Node(momentum)},
               {"nesterov", YAML::Node(nesterov)}})};
}

Spec synthetic(int64_t samples, int64_t features, int64_t classes) {
  return {map({{"type", YAML::Node("synthetic")},
               {"samples", YAML::Node(samples)},
               {"features", YAML::Node(features)},
               {"classes", YAML::Node(classes)}})};
}
Spec idx(const std::string& images, const std::string& labels, bool normalize) {
  return {map({{"type", YAML::Node("idx")},
               {"images", YAML::Node(images)},
               {"labels", YAML::Node(labels)},
               {"normalize", YAML::Node(normalize)}})};
}
Spec csv(const std::string& path, bool header) {
  return {map(
      {{"type", YAML::Node("csv")}, {"path", YAML::Node(path)}, {"header", YAML::Node(header)}})};
}

Sequential::Sequential(std::vector<Spec> layers, std::vector<int64_t> input_shape)
    : model_(YAML::NodeType::Map) {
  if (!input_shape.empty()) model_["input"] = input_shape;
  for (Spec& layer : layers) model_["layers"].push_back(layer.node);
}

void Sequential::compile(const Spec& optimizer, const std::string& loss,
                         std::vector<std::string> metrics) {
  compile(optimizer, Spec{YAML::Node(loss)}, std::move(metrics));
}
void Sequential::compile(const Spec& optimizer, const Spec& loss,
                         std::vector<std::string> metrics) {
  optimizer_ = optimizer.node;
  loss_ = loss.node;
  metrics_ = metrics.empty() ? YAML::Node() : YAML::Node(metrics);
}

YAML::Node Sequential::config(const FitOptions& options) const {
  if (!optimizer_) throw ConfigError(std::string(kOrigin) + ": fit() before compile()");
  YAML::Node root(YAML::NodeType::Map);
  root["seed"] = options.seed;
  root["model"] = YAML::Clone(model_);
  root["loss"] = loss_;
  if (metrics_) root["metrics"] = metrics_;
  root["optimizer"] = YAML::Clone(optimizer_);
  root["training"]["epochs"] = options.epochs;
  root["training"]["global_batch_size"] = options.batch_size;
  root["training"]["tail"] = options.partial_last_batch ? "partial" : "drop";
  for (const Spec& callback : options.callbacks) {
    YAML::Node settings = YAML::Clone(callback.node);
    const std::string type =
        settings.IsMap() && settings["type"] ? settings["type"].as<std::string>() : "";
    if (type == "reduce_on_plateau") {  // a schedule in the config
      root["optimizer"]["schedule"] = settings;
      continue;
    }
    if (type != "early_stopping")
      throw ConfigError(std::string(kOrigin) + ": callbacks: '" + type +
                        "' is not a callback fit() knows (EarlyStopping, ReduceLROnPlateau)");
    settings.remove("type");
    root["training"]["early_stopping"] = settings;
  }
  for (const std::string& assignment : options.set) apply_override(root, assignment);
  return root;
}

History Sequential::fit(Runtime& runtime, const Spec& train, const FitOptions& options,
                        const std::optional<Spec>& validation) {
  YAML::Node root = config(options);
  root["data"]["train"] = YAML::Clone(train.node);
  if (validation) root["data"]["test"] = YAML::Clone(validation->node);
  return run(runtime, root, false, nullptr, nullptr, options);
}

History Sequential::fit(Runtime& runtime, const Arrays& train, const FitOptions& options,
                        const std::optional<Arrays>& validation) {
  return run(runtime, config(options), true, &train, validation ? &*validation : nullptr, options);
}

History Sequential::run(Runtime& runtime, YAML::Node root, bool in_memory, const Arrays* train,
                        const Arrays* validation, const FitOptions& options) {
  Communicator& comm = runtime.comm();
  Config config;
  Dataset train_data;
  std::optional<Dataset> test_data;
  run_agreed(comm, [&] {
    config = parse_config(root, kOrigin, in_memory ? DataOrigin::kMemory : DataOrigin::kConfig);
    if (in_memory) {
      train_data = to_dataset(*train, std::string(kOrigin) + ": training arrays");
      if (validation)
        test_data = to_dataset(*validation, std::string(kOrigin) + ": validation arrays");
    } else {
      train_data = load_dataset(config.train_data, comm.rank());
      if (config.test_data) test_data = load_dataset(*config.test_data, comm.rank());
    }
  });
  Session session =
      open_session(comm, std::move(config), std::move(train_data), std::move(test_data));
  const bool lead = comm.rank() == 0 && options.verbose;
  session.trainer->set_reporting(lead ? &std::cout : nullptr, ProgressMode::kOff, "");
  session.trainer->fit();
  return {session.trainer->epoch_records()};
}

}  // namespace ddp::keras
