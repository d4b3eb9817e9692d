// Sequential's state besides fit (Note [model state]): its weights in and out, in PyTorch's
// layouts or through a caller's writer and reader in ddp-trainer's own, the optimizer's
// learning rate (Note [rate set by a callback]), and the model as Keras describes it.

#include <string>
#include <utility>
#include <vector>

#include "api/keras.h"
#include "api/keras_model_config.h"
#include "comm/agreement.h"
#include "core/error.h"
#include "train/config.h"
#include "train/model_weights.h"
#include "train/safetensors.h"
#include "train/session.h"

namespace ddp::keras {
namespace {

// The name errors carry in place of a config file's.
const char* const kOrigin = "Sequential";

}  // namespace

std::string Sequential::keras_config() {
  Trainer& trainer = trained("save");  // what the config is for
  return keras_model_config(session_->config.layers, trainer.model().input_shape()).dump();
}

double Sequential::learning_rate() const {
  if (fitting_) return session_->trainer->next_learning_rate();
  if (!compiled())
    throw ConfigError(std::string(kOrigin) + ": optimizer.learning_rate before compile()");
  YAML::Node root(YAML::NodeType::Map);
  root["optimizer"] = optimizer_;
  return parse_optimizer_config(root, kOrigin).schedule.base_lr;
}

void Sequential::set_learning_rate(double rate) {
  if (fitting_) {
    session_->trainer->request_learning_rate(rate);
    return;
  }
  if (!compiled())
    throw ConfigError(std::string(kOrigin) + ": optimizer.learning_rate before compile()");
  YAML::Node root(YAML::NodeType::Map);
  root["optimizer"] = YAML::Clone(optimizer_);
  root["optimizer"]["learning_rate"] = rate;
  parse_optimizer_config(root, kOrigin);  // a ConfigError naming the key, optimizer_ unchanged
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
  put_weights([w = std::move(weights)] { return w; }, std::string(kOrigin) + ": set_weights");
}

void Sequential::set_weights_in_own_layout(std::vector<NamedTensor> weights,
                                           const std::string& call) {
  put_weights([w = std::move(weights)] { return w; }, std::string(kOrigin) + ": " + call,
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
  for (const YAML::Node& layer : model_["layers"]) types.push_back(layer["type"].as<std::string>());
  return types;
}
}  // namespace ddp::keras
