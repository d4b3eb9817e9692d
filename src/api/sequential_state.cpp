// Sequential's state besides fit (Note [model state]): its weights in and out, in PyTorch's
// layouts or through a caller's writer and reader in ddp-trainer's own, the optimizer's
// learning rate (Note [rate set by a callback]), and the model as Keras describes it.

#include <bit>
#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "api/keras.h"
#include "api/keras_model_config.h"
#include "comm/agreement.h"
#include "core/error.h"
#include "optim/adaptive_optimizer.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/metric_set.h"
#include "train/model_weights.h"
#include "train/safetensors.h"
#include "train/session.h"

namespace ddp::keras {
namespace {

std::vector<std::string> names_of(const std::vector<TensorSignature>& tensors) {
  std::vector<std::string> names;
  for (const TensorSignature& t : tensors) names.push_back(t.name);
  return names;
}

}  // namespace

void Sequential::continue_from_last_fit(Communicator& comm, Trainer& next) {
  // Note [model state]: the new trainer's own state at its start, with the last fit's weights
  // and, for the same optimizer, its moments and step count.
  TrainingState last = session_->trainer->capture();
  TrainingState state = next.capture();
  // Note [frozen layers]: layers frozen or unfrozen since then split the same tensors otherwise
  // between parameters and buffers; they move by name, to a fresh optimizer as in Keras.
  if (names_of(last.signature) != names_of(state.signature) ||
      names_of(last.buffer_signature) != names_of(state.buffer_signature)) {
    if (!compiled_since_fit_)
      throw ConfigError(std::string(kSequentialOrigin) +
                        ": fit: layers were frozen or unfrozen (trainable) since the last fit; "
                        "compile() again first, as Keras needs, for an optimizer of the weights "
                        "now trained");
    std::vector<NamedTensor> weights = named_weights(*session_->trainer, WeightLayout::kOwn);
    load_named_weights(
        comm, next, [&weights] { return std::move(weights); },
        std::string(kSequentialOrigin) + ": the last fit's model", WeightLayout::kOwn);
    return;
  }
  // With their signatures, which restore() checks against the new model's.
  state.signature = std::move(last.signature);
  state.buffer_signature = std::move(last.buffer_signature);
  state.params = std::move(last.params);
  state.buffers = std::move(last.buffers);
  const auto names = [](const TrainingState& s) {
    std::vector<std::string> out;
    for (const auto& [name, values] : s.optimizer_state) out.push_back(name);
    return out;
  };
  if (!compiled_since_fit_ && last.optimizer == state.optimizer && names(last) == names(state)) {
    state.optimizer_state = std::move(last.optimizer_state);
    state.optimizer_steps = last.optimizer_steps;
  }
  // A model that does not fit (another input shape) throws, leaving the last fit's in place.
  run_agreed(comm, [&] {
    next.restore(state, std::string(kSequentialOrigin) + ": the last fit's model");
  });
}

std::string Sequential::keras_config() {
  Trainer& trainer = trained("save");  // what the config is for
  return keras_model_config(session_->config.layers, trainer.model().input_shape(),
                            session_->config.augment_layers)
      .dump();
}

std::string Sequential::keras_compile_config() const {
  if (!compiled()) return "";
  YAML::Node root(YAML::NodeType::Map);
  root["optimizer"] = YAML::Clone(optimizer_);
  const nlohmann::json optimizer =
      keras_optimizer_json(parse_optimizer_config(root, kSequentialOrigin));
  const nlohmann::json loss = keras_loss_json(loss_);
  if (optimizer.is_null() || loss.is_null()) return "";
  // Keras' compile without metrics has none; ddp-trainer's has the loss's own.
  const std::string loss_name =
      loss_.IsScalar() ? loss_.as<std::string>() : loss_["type"].as<std::string>();
  const std::vector<std::string> metrics =
      metrics_ ? metrics_.as<std::vector<std::string>>() : default_metrics(loss_kind(loss_name));
  return nlohmann::json{{"optimizer", optimizer},      {"loss", loss},
                        {"loss_weights", nullptr},     {"metrics", metrics},
                        {"weighted_metrics", nullptr}, {"run_eagerly", false},
                        {"steps_per_execution", 1},    {"jit_compile", false}}
      .dump();
}

int64_t Sequential::steps_per_epoch() const {
  return session_ ? session_->trainer->steps_per_epoch() : 0;
}

int64_t Sequential::optimizer_iterations() const {
  return session_ && !compiled_since_fit_ ? session_->trainer->optimizer_steps() : 0;
}

OptimizerSlots Sequential::slots_of(Trainer& trainer, const TrainingState& state) const {
  OptimizerSlots slots{.optimizer = state.optimizer, .iterations = state.optimizer_steps};
  YAML::Node root(YAML::NodeType::Map);
  root["optimizer"] = YAML::Clone(optimizer_);
  const OptimizerConfig optimizer = parse_optimizer_config(root, kSequentialOrigin);
  const LrScheduleSpec& schedule = optimizer.schedule;
  slots.learning_rate = schedule.type == "constant" && schedule.warmup_steps == 0
                            ? schedule.base_lr
                            : std::numeric_limits<double>::quiet_NaN();
  if (compiled_since_fit_) {  // the next fit's optimizer is a fresh one, perhaps of another kind
    slots.iterations = 0;
    return slots;
  }
  for (const auto& [name, values] : state.optimizer_state)
    slots.buffers.emplace_back(name, named_parameter_values(trainer, values, WeightLayout::kOwn));
  if (optimizer.type == "nadam")
    slots.scalars.push_back(nadam_momentum_product(optimizer.adaptive, slots.iterations));
  return slots;
}

OptimizerSlots Sequential::optimizer_slots() {
  Trainer& trainer = trained("optimizer_slots");
  return slots_of(trainer, trainer.capture());  // collective: gathers a sharded state
}

void Sequential::load_optimizer_slots(
    const std::function<std::optional<OptimizerSlots>(const OptimizerSlots&)>& on_rank0,
    const std::string& origin) {
  Trainer& trainer = trained("optimizer_slots");
  TrainingState state = trainer.capture();
  const OptimizerSlots like = slots_of(trainer, state);
  // found, iterations, and the rate's bits, as rank 0 read them
  std::vector<int64_t> read(3, 0);
  run_agreed(*comm_, [&] {
    if (comm_->rank() != 0) return;
    const std::optional<OptimizerSlots> slots = on_rank0(like);
    if (!slots) return;
    if (slots->iterations < 0)
      throw CheckpointError(origin + ": the optimizer's iterations are " +
                            std::to_string(slots->iterations) + ", not a number of steps");
    if (slots->buffers.size() != state.optimizer_state.size())
      throw CheckpointError(origin + ": the optimizer holds " +
                            std::to_string(slots->buffers.size()) + " state buffers, " +
                            state.optimizer + " " + std::to_string(state.optimizer_state.size()));
    for (size_t b = 0; b < slots->buffers.size(); ++b)
      state.optimizer_state[b].second = parameter_values(
          trainer, slots->buffers[b].second,
          origin + ": the optimizer's " + slots->buffers[b].first, WeightLayout::kOwn);
    read = {1, slots->iterations, std::bit_cast<int64_t>(slots->learning_rate)};
  });
  comm_->broadcast(std::span<int64_t>(read), 0);
  if (read[0] == 0) return;
  for (auto& [name, values] : state.optimizer_state) comm_->broadcast(std::span<float>(values), 0);
  state.optimizer_steps = read[1];
  run_agreed(*comm_, [&] { trainer.restore(state, origin); });
  const double rate = std::bit_cast<double>(read[2]);
  if (!std::isnan(rate)) set_learning_rate(rate);
}

double Sequential::learning_rate() const {
  if (fitting_) return session_->trainer->next_learning_rate();
  if (!compiled())
    throw ConfigError(std::string(kSequentialOrigin) +
                      ": optimizer.learning_rate before compile()");
  YAML::Node root(YAML::NodeType::Map);
  root["optimizer"] = optimizer_;
  return parse_optimizer_config(root, kSequentialOrigin).schedule.base_lr;
}

void Sequential::set_learning_rate(double rate) {
  if (fitting_) {
    session_->trainer->request_learning_rate(rate);
    return;
  }
  if (!compiled())
    throw ConfigError(std::string(kSequentialOrigin) +
                      ": optimizer.learning_rate before compile()");
  YAML::Node root(YAML::NodeType::Map);
  root["optimizer"] = YAML::Clone(optimizer_);
  root["optimizer"]["learning_rate"] = rate;
  parse_optimizer_config(root,
                         kSequentialOrigin);  // a ConfigError naming the key, optimizer_ unchanged
  optimizer_.reset(root["optimizer"]);
}

std::vector<NamedTensor> Sequential::get_weights() { return named_weights(trained("get_weights")); }

std::vector<NamedTensor> Sequential::get_weights_in_own_layout() {
  return named_weights(trained("get_weights"), WeightLayout::kOwn);
}

void Sequential::put_weights(std::function<std::vector<NamedTensor>()> weights,
                             const std::string& origin, bool own_layout) {
  if (!session_) {  // loaded when the first fit has built the model
    pending_weights_ = std::move(weights);
    pending_origin_ = origin;
    pending_own_layout_ = own_layout;
    return;
  }
  load_named_weights(*comm_, *session_->trainer, weights, origin,
                     own_layout ? WeightLayout::kOwn : WeightLayout::kPyTorch);
}

void Sequential::set_weights(std::vector<NamedTensor> weights) {
  put_weights([w = std::move(weights)] { return w; },
              std::string(kSequentialOrigin) + ": set_weights");
}

void Sequential::set_weights_in_own_layout(std::vector<NamedTensor> weights,
                                           const std::string& call) {
  put_weights([w = std::move(weights)] { return w; }, std::string(kSequentialOrigin) + ": " + call,
              /*own_layout=*/true);
}

void Sequential::load_weights(const std::string& path, const WeightsReader& read) {
  if (read)
    put_weights([path, read] { return read(path); }, path, /*own_layout=*/true);
  else
    put_weights([path] { return read_safetensors(path); }, path);
}

void Sequential::save_weights(const std::string& path, const WeightsWriter& write) {
  Trainer& trainer = trained("save_weights");
  const std::vector<NamedTensor> tensors =
      named_weights(trainer, write ? WeightLayout::kOwn : WeightLayout::kPyTorch);
  run_agreed(*comm_, [&] {
    if (comm_->rank() != 0) return;
    if (write)
      write(path, tensors);
    else
      write_safetensors(path, tensors, {{"format", "pt"}, {"producer", "ddp-trainer"}});
  });
}

std::vector<std::string> Sequential::layer_types() const {
  std::vector<std::string> types;
  for (const YAML::Node& layer : model_["layers"]) types.push_back(leaf_layer(layer).type);
  return types;
}

std::vector<KerasLayerRef> Sequential::keras_layers() const {
  return keras_layer_refs(model_["layers"]);
}
}  // namespace ddp::keras
