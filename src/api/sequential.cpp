// Sequential (Note [C++ API]): the config fit() trains, and the trained model it keeps (Note
// [model state]).

#include <algorithm>
#include <cmath>
#include <iostream>
#include <span>
#include <utility>

#include "api/keras.h"
#include "comm/agreement.h"
#include "core/error.h"
#include "data/data_source.h"
#include "nn/model_builder.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/config_reader.h"
#include "train/model_weights.h"
#include "train/run_checkpoints.h"
#include "train/session.h"

namespace ddp::keras {
namespace {

// The arrays as a Dataset, which takes over their memory; unlabelled (predict): labels and
// targets, if any, are ignored.
Dataset to_dataset(Arrays&& arrays, const std::string& origin, bool labelled = true) {
  Dataset data;
  data.origin = origin;
  data.sample_shape = Shape(arrays.sample_shape);
  const int64_t per_sample = data.sample_shape.numel();
  if (arrays.sample_shape.empty() || per_sample <= 0)
    throw ConfigError(origin + ": sample_shape must be non-empty with dimensions > 0");
  const auto features = static_cast<int64_t>(arrays.features.size());
  if (features % per_sample != 0)
    throw DataError(origin + ": " + std::to_string(features) +
                    " features are not whole samples of " + std::to_string(per_sample));
  const int64_t samples = features / per_sample;
  data.features = std::move(arrays.features);
  if (!labelled) {
    data.labels.assign(static_cast<size_t>(samples), 0);
    return data;
  }
  const bool values = !arrays.targets.empty();
  if (values && !arrays.labels.empty())
    throw DataError(origin + ": labels and targets both given: class labels or real-valued " +
                    "targets, not both");
  // The same number of labels (a class index, or several 0/1 labels) or targets per sample.
  const auto given = static_cast<int64_t>(values ? arrays.targets.size() : arrays.labels.size());
  const std::string what = values ? " targets" : " labels";
  if (samples == 0 || given == 0 || given % samples != 0)
    throw DataError(origin + ": " + std::to_string(given) + what + " for " +
                    std::to_string(samples) + " samples of " + std::to_string(per_sample) +
                    " features: not the same number of" + what + " for every sample");
  data.label_width = given / samples;
  if (values) {
    for (size_t i = 0; i < arrays.targets.size(); ++i)
      if (!std::isfinite(arrays.targets[i]))
        throw DataError(origin + ": target " + std::to_string(i) + " is not finite");
    data.values = std::move(arrays.targets);
  } else {
    data.labels = std::move(arrays.labels);
  }
  if (!arrays.sample_weights.empty()) check_sample_weights(arrays.sample_weights, samples, origin);
  data.sample_weights = std::move(arrays.sample_weights);
  return data;
}

// Keras' validation_split: the samples from floor(n (1 - fraction)) on leave `data` and validate.
Dataset split_off_validation(Dataset& data, double fraction) {
  const std::string key = std::string(kSequentialOrigin) + ": validation_split";
  if (!(fraction >= 0 && fraction < 1))
    throw ConfigError(key + ": must be in [0, 1), got " + std::to_string(fraction));
  const int64_t n = data.size();
  const auto split_at = static_cast<int64_t>(std::floor(static_cast<double>(n) * (1 - fraction)));
  if (split_at == 0 || split_at == n)
    throw DataError(key + ": " + std::to_string(n) + " samples are too few to split " +
                    std::to_string(fraction) + " of them off for validation");
  Dataset held_out;
  held_out.origin = key + " of the training arrays";
  held_out.sample_shape = data.sample_shape;
  held_out.label_width = data.label_width;
  const auto tail = [split_at](auto& from, auto& to, int64_t per_sample) {
    if (from.empty()) return;  // labels or values: the one the data do not have
    const auto begin = from.begin() + split_at * per_sample;
    to.assign(begin, from.end());
    from.erase(begin, from.end());
  };
  tail(data.features, held_out.features, data.sample_shape.numel());
  tail(data.labels, held_out.labels, data.label_width);
  tail(data.values, held_out.values, data.label_width);
  tail(data.sample_weights, held_out.sample_weights, 1);
  return held_out;
}

// A BackupAndRestore among the callbacks: whether it deletes its checkpoints at the end.
std::optional<bool> backup_and_restore(const FitOptions& options) {
  for (const Spec& callback : options.callbacks)
    if (callback.node.IsMap() && callback.node["type"] &&
        callback.node["type"].as<std::string>() == "backup_and_restore")
      return callback.node["delete_checkpoint"].as<bool>();
  return std::nullopt;
}

}  // namespace

Sequential::Sequential(std::vector<Spec> layers, std::vector<int64_t> input_shape)
    : model_(YAML::NodeType::Map) {
  if (!input_shape.empty()) model_["input"] = input_shape;
  for (Spec& layer : layers) model_["layers"].push_back(layer.node);
}
void Sequential::add(const Spec& layer) {
  refuse_once_built("add");
  model_["layers"].push_back(YAML::Clone(layer.node));
}
void Sequential::pop() {
  refuse_once_built("pop");
  if (!model_["layers"] || model_["layers"].size() == 0)
    throw ConfigError(std::string(kSequentialOrigin) + ": pop: there is no layer to remove");
  // A new model node, bound with reset(): yaml-cpp's assignment would rewrite the nodes it shares.
  YAML::Node model(YAML::NodeType::Map);
  if (model_["input"]) model["input"] = YAML::Clone(model_["input"]);
  for (size_t i = 0; i + 1 < model_["layers"].size(); ++i)
    model["layers"].push_back(YAML::Clone(model_["layers"][i]));
  model_.reset(model);
}
void Sequential::set_input_shape(std::vector<int64_t> input_shape) {
  refuse_once_built("the input shape");
  YAML::Node model = YAML::Clone(model_);
  model["input"] = input_shape;
  model_.reset(model);
}
void Sequential::set_trainable(size_t layer, bool trainable) {
  const YAML::Node layers = model_["layers"];
  if (!layers || layer >= layers.size())
    throw ConfigError(std::string(kSequentialOrigin) + ": layers[" + std::to_string(layer) +
                      "].trainable: the model has " + std::to_string(layers ? layers.size() : 0) +
                      " layers");
  const YAML::Node type = layers[layer]["type"];
  if (!type || !has_parameters(type.as<std::string>())) return;  // nothing to freeze
  YAML::Node model = YAML::Clone(model_);
  model["layers"][layer]["trainable"] = trainable;
  model_.reset(model);
}
bool Sequential::trainable(size_t layer) const {
  const YAML::Node layers = model_["layers"];
  if (!layers || layer >= layers.size() || !layers[layer]["trainable"]) return true;
  return layers[layer]["trainable"].as<bool>();
}
void Sequential::refuse_once_built(const char* call) const {
  if (session_)
    throw ConfigError(std::string(kSequentialOrigin) + ": " + call +
                      " after the model is built (by fit or build): its layers are fixed; make a "
                      "new Sequential");
}
Sequential::~Sequential() = default;
Sequential::Sequential(Sequential&&) noexcept = default;
Sequential& Sequential::operator=(Sequential&&) noexcept = default;

void Sequential::compile(const Spec& optimizer, const std::string& loss) {
  compile_with(optimizer, Spec{YAML::Node(loss)}, std::nullopt);
}
void Sequential::compile(const Spec& optimizer, const Spec& loss) {
  compile_with(optimizer, loss, std::nullopt);
}
void Sequential::compile(const Spec& optimizer, const std::string& loss,
                         std::vector<std::string> metrics) {
  compile_with(optimizer, Spec{YAML::Node(loss)}, std::move(metrics));
}
void Sequential::compile(const Spec& optimizer, const Spec& loss,
                         std::vector<std::string> metrics) {
  compile_with(optimizer, loss, std::move(metrics));
}
void Sequential::compile_with(const Spec& optimizer, const Spec& loss,
                              std::optional<std::vector<std::string>> metrics) {
  // Copies, bound with reset(): yaml-cpp's assignment would rebind every node sharing the old one,
  // the caller's Specs of an earlier compile() among them.
  optimizer_.reset(YAML::Clone(optimizer.node));
  loss_.reset(YAML::Clone(loss.node));
  metrics_.reset(metrics ? YAML::Node(*metrics) : YAML::Node());
  compiled_since_fit_ = true;
}

YAML::Node Sequential::config(const FitOptions& options) const {
  if (!compiled()) throw ConfigError(std::string(kSequentialOrigin) + ": fit() before compile()");
  if (options.initial_epoch < 0 || options.initial_epoch > options.epochs)
    throw ConfigError(std::string(kSequentialOrigin) +
                      ": initial_epoch: must be in [0, epochs], got " +
                      std::to_string(options.initial_epoch));
  YAML::Node root(YAML::NodeType::Map);
  root["seed"] = options.seed;
  root["model"] = YAML::Clone(model_);
  root["loss"] = YAML::Clone(loss_);
  if (!options.class_weight.empty()) {  // Note [class weights]: a key of the loss
    if (!root["loss"].IsMap()) root["loss"] = YAML::Load("{type: " + loss_.as<std::string>() + "}");
    for (const auto& [c, w] : options.class_weight) root["loss"]["class_weight"][c] = w;
  }
  if (metrics_) root["metrics"] = metrics_;
  root["optimizer"] = YAML::Clone(optimizer_);
  root["training"]["epochs"] = options.epochs;
  root["training"]["global_batch_size"] = options.batch_size;
  root["training"]["tail"] = options.partial_last_batch ? "partial" : "drop";
  root["training"]["validation_freq"] = options.validation_freq;
  // Note [run checkpoints]: none without BackupAndRestore, which writes and reads them.
  root["checkpoint"]["every_epochs"] = 0;
  bool backup = false;
  for (const Spec& callback : options.callbacks) {
    YAML::Node settings = YAML::Clone(callback.node);
    const std::string type =
        settings.IsMap() && settings["type"] ? settings["type"].as<std::string>() : "";
    if (type == "reduce_on_plateau") {  // a schedule in the config
      root["optimizer"]["schedule"] = settings;
      continue;
    }
    if (type == "swap_ema_weights") {  // Note [weight average]
      root["optimizer"]["validate_average"] = true;
      continue;
    }
    if (type == "backup_and_restore") {
      if (settings["backup_dir"].as<std::string>().empty())
        throw ConfigError(std::string(kSequentialOrigin) +
                          ": callbacks: BackupAndRestore needs a backup_dir to write to");
      const auto steps = settings["save_freq_steps"].as<int64_t>();
      root["checkpoint"]["dir"] = settings["backup_dir"];
      root["checkpoint"]["every_epochs"] = steps == 0 ? 1 : 0;
      root["checkpoint"]["every_steps"] = steps;
      backup = true;
      continue;
    }
    if (type != "early_stopping")
      throw ConfigError(std::string(kSequentialOrigin) + ": callbacks: '" + type +
                        "' is not a callback fit() knows (EarlyStopping, ReduceLROnPlateau, "
                        "BackupAndRestore, SwapEMAWeights)");
    settings.remove("type");
    root["training"]["early_stopping"] = settings;
  }
  for (const std::string& assignment : options.set) {
    if (!backup && assignment.rfind("checkpoint.", 0) == 0)
      throw ConfigError(std::string(kSequentialOrigin) + ": set: " + assignment +
                        ": a fit writes checkpoints only with a BackupAndRestore callback");
    apply_override(root, assignment);
  }
  return root;
}

History Sequential::fit(Runtime& runtime, const Spec& train, const FitOptions& options,
                        const std::optional<Spec>& validation) {
  YAML::Node root = config(options);
  root["data"]["train"] = YAML::Clone(train.node);
  if (validation) root["data"]["test"] = YAML::Clone(validation->node);
  return run(runtime, root, false, nullptr, nullptr, options);
}

History Sequential::fit(Runtime& runtime, Arrays train, const FitOptions& options,
                        std::optional<Arrays> validation) {
  return run(runtime, config(options), true, &train, validation ? &*validation : nullptr, options);
}

History Sequential::run(Runtime& runtime, YAML::Node root, bool in_memory, Arrays* train,
                        Arrays* validation, const FitOptions& options, bool train_it) {
  // A fit would replace the model that the running fit trains.
  if (fitting_)
    throw ConfigError(std::string(kSequentialOrigin) +
                      ": fit() from a callback of the fit in progress; fit again after it");
  Communicator& comm = runtime.comm();
  Config config;
  Dataset train_data;
  std::optional<Dataset> test_data;
  run_agreed(comm, [&] {
    config = parse_config(root, kSequentialOrigin,
                          in_memory ? DataOrigin::kMemory : DataOrigin::kConfig);
    if (in_memory) {
      train_data =
          to_dataset(std::move(*train), std::string(kSequentialOrigin) + ": training arrays");
      if (validation)
        test_data = to_dataset(std::move(*validation),
                               std::string(kSequentialOrigin) + ": validation arrays");
      else if (options.validation_split != 0)
        test_data = split_off_validation(train_data, options.validation_split);
    } else {
      if (options.validation_split != 0)
        throw ConfigError(std::string(kSequentialOrigin) +
                          ": validation_split splits arrays; with data Specs, give validation "
                          "data");
      train_data = load_dataset(config.train_data, comm.rank());
      if (config.test_data) test_data = load_dataset(*config.test_data, comm.rank());
    }
  });
  auto session = std::make_unique<Session>(
      open_session(comm, std::move(config), std::move(train_data), std::move(test_data)));
  Trainer& trainer = *session->trainer;
  if (session_) continue_from_last_fit(comm, trainer);
  if (pending_weights_) {
    load_named_weights(comm, trainer, pending_weights_, pending_origin_,
                       pending_own_layout_ ? WeightLayout::kOwn : WeightLayout::kPyTorch);
    pending_weights_ = {};
  }
  session_ = std::move(session);
  runtime_ = &runtime;
  comm_ = &comm;
  compiled_since_fit_ = false;
  if (!train_it) return {};  // build()
  const bool lead = comm.rank() == 0 && options.verbose;
  trainer.set_reporting(lead ? &std::cout : nullptr, ProgressMode::kOff, "");
  trainer.start_at_epoch(options.initial_epoch);
  const std::optional<bool> backup = backup_and_restore(options);  // whether to delete at the end
  const CheckpointConfig& checkpoint = session_->config.checkpoint;
  if (backup) {  // Note [run checkpoints]
    resume_run(comm, trainer, session_->config, checkpoint.dir, "", lead ? &std::cout : nullptr);
    write_checkpoints(comm, trainer, checkpoint, checkpoint.dir, lead ? &std::cout : nullptr);
  }
  stop_training_ = false;  // Keras' fit clears model.stop_training as it starts
  // Note [rate set by a callback]: after the hooks' calls, every rank takes rank 0's rate.
  if (options.on_epoch_end)
    trainer.set_epoch_observer([this, &trainer, end = options.on_epoch_end](const EpochRecord& r) {
      const bool stop = end(r);
      trainer.agree_on_learning_rate();
      return stop || stop_training_;
    });
  if (options.on_batch_end)
    trainer.set_batch_observer([&trainer, end = options.on_batch_end](const BatchLogs& logs) {
      end(logs);
      trainer.agree_on_learning_rate();
    });
  if (options.on_train_begin || options.on_epoch_begin || options.on_batch_begin ||
      options.on_batch_end)
    trainer.set_stop_check([this] { return stop_training_; });
  if (options.on_epoch_begin || options.on_batch_begin)  // an epoch begins before its first step
    trainer.set_step_observer(
        [&trainer, begin = options.on_epoch_begin, batch = options.on_batch_begin](int64_t done) {
          const int64_t in_epoch = done % trainer.steps_per_epoch();
          const bool epoch_begins = in_epoch == 0 && begin;
          if (epoch_begins) begin(done / trainer.steps_per_epoch() + 1);
          if (batch) batch(in_epoch);
          if (epoch_begins || batch) trainer.agree_on_learning_rate();
        });
  fitting_ = true;
  // The observers belong to this fit alone: the trainer outlives it (the next fit continues it),
  // and a rate a callback set is the optimizer's for the next fit.
  const auto end_of_fit = [this](Trainer* t) {
    t->set_epoch_observer({});
    t->set_batch_observer({});
    t->set_step_observer({});
    t->set_stop_check({});
    if (const std::optional<double> rate = t->callback_learning_rate())
      optimizer_["learning_rate"] = *rate;
    fitting_ = false;
  };
  const std::unique_ptr<Trainer, decltype(end_of_fit)> guard(&trainer, end_of_fit);
  if (options.on_train_begin) {
    options.on_train_begin();
    trainer.agree_on_learning_rate();
  }
  trainer.fit();
  if (backup.value_or(false))  // the fit ended: its backup has served (Keras deletes it too)
    run_agreed(comm, [&] {
      if (comm.rank() == 0) CheckpointDir(checkpoint.dir, checkpoint.keep).remove_all();
    });
  return {trainer.epoch_records()};
}

Trainer& Sequential::trained(const char* call) {
  if (!session_)
    throw ConfigError(std::string(kSequentialOrigin) + ": " + call +
                      "() before fit(): the model is built, and its weights made, by fit() (or by "
                      "build(), given the input shape)");
  return *session_->trainer;
}

std::vector<float> Sequential::predict(Arrays x) {
  Trainer& trainer = trained("predict");
  Dataset data;
  run_agreed(*comm_, [&] {
    data = to_dataset(std::move(x), std::string(kSequentialOrigin) + ": predict arrays", false);
    trainer.check_fits_model(data, false);
  });
  return trainer.predict(data);
}

std::vector<MetricValue> Sequential::evaluate(Arrays data) {
  if (!compiled())
    throw ConfigError(std::string(kSequentialOrigin) + ": evaluate() before compile()");
  // With the loss compile() gave since the last fit, its targets laid out as the data's labels.
  const int64_t sample = Shape(data.sample_shape).numel();
  const int64_t rows = sample > 0 ? static_cast<int64_t>(data.features.size()) / sample : 0;
  if (session_)
    build(*runtime_, data.labels.empty() || rows == 0
                         ? std::nullopt
                         : std::optional(static_cast<int64_t>(data.labels.size()) / rows));
  Trainer& trainer = trained("evaluate");
  Dataset samples;
  run_agreed(*comm_, [&] {
    samples = to_dataset(std::move(data), std::string(kSequentialOrigin) + ": evaluate arrays");
    trainer.check_fits_model(samples, true);
  });
  const EvalResult result = trainer.evaluate(samples);
  std::vector<MetricValue> out = {{"loss", result.loss}};
  out.insert(out.end(), result.metrics.begin(), result.metrics.end());
  return out;
}

}  // namespace ddp::keras
