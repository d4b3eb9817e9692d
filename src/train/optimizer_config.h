#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer.h"
#include "train/config_reader.h"
#include "train/reduce_lr_on_plateau.h"

namespace ddp {

// The config's `optimizer` section.
struct OptimizerConfig {
  std::string type;  // sgd, adam, adamw, rmsprop, adagrad, adamax, nadam, lion
  SgdHyper sgd;
  AdamHyper adam;
  RmspropHyper rmsprop;
  AdaptiveHyper adaptive;      // adagrad, adamax, nadam, lion
  LrScheduleSpec schedule;     // base_lr = learning_rate; total_steps filled in by the trainer
  double global_clipnorm = 0;  // Note [gradient clipping]; 0: off
  PlateauConfig plateau;       // schedule type reduce_on_plateau: Note [reduce on plateau]
  // Note [weight average] (optim/optimizer.h): Keras' use_ema, ema_momentum and
  // ema_overwrite_frequency (0: Keras' None, the average written at the end of training only).
  bool use_ema = false;
  double ema_momentum = 0.99;
  int64_t ema_overwrite_frequency = 0;
  bool validate_average = false;  // val_ values of the average (Keras' SwapEMAWeights)

  // Whether `rate` may be this optimizer's learning rate: a decoupled weight decay (AdamW's,
  // Lion's, and every optimizer's by Keras' rule) scales the weights by 1 - rate x weight_decay
  // every step, which must stay positive.
  bool rate_fits_decay(double rate) const { return rate * decoupled_weight_decay() < 1; }
  bool is_adaptive() const {
    return type == "adagrad" || type == "adamax" || type == "nadam" || type == "lion";
  }
  double decoupled_weight_decay() const {
    if (type == "rmsprop") return rmsprop.keras_rule ? rmsprop.weight_decay : 0;
    if (type == "sgd") return sgd.keras_rule ? sgd.weight_decay : 0;
    if (is_adaptive()) return adaptive.decoupled() ? adaptive.weight_decay : 0;
    return adam.decoupled_weight_decay ? adam.weight_decay : 0;
  }
};

// Reads and checks the section (ConfigError naming the key).
OptimizerConfig parse_optimizer(ConfigNode node);

// The optimizer the section describes, over `count` elements of state.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, ComputeBackend& backend,
                                          size_t count);

}  // namespace ddp
