#include "train/optimizer_config.h"

namespace ddp {

OptimizerConfig parse_optimizer(ConfigNode node) {
  OptimizerConfig opt;
  opt.type = node.choice("type", {"sgd", "adam", "adamw", "rmsprop"});
  // RMSprop by each rule takes its library's defaults: PyTorch's rate 0.01, rho (its alpha) 0.99
  // and epsilon 1e-8; Keras' 0.001, 0.9 and 1e-7.
  const bool keras_rmsprop =
      opt.type == "rmsprop" && node.choice("rule", {"pytorch", "keras"}, "pytorch") == "keras";
  const double default_lr =
      opt.type == "sgd" || (opt.type == "rmsprop" && !keras_rmsprop) ? 1e-2 : 1e-3;
  opt.schedule.base_lr =
      positive_number(node, "learning_rate", node.get("learning_rate", default_lr));
  if (opt.type == "sgd") {
    opt.sgd.momentum =
        static_cast<float>(in_unit_interval(node, "momentum", node.get("momentum", 0.0)));
    opt.sgd.nesterov = node.get("nesterov", false);
    if (opt.sgd.nesterov && opt.sgd.momentum == 0) node.fail("nesterov", "needs momentum > 0");
    opt.sgd.weight_decay = static_cast<float>(node.get("weight_decay", 0.0));
    if (opt.sgd.weight_decay < 0) node.fail("weight_decay", "must be >= 0");
  } else if (opt.type == "rmsprop") {
    RmspropHyper& r = opt.rmsprop;
    r.keras_rule = keras_rmsprop;
    r.rho = static_cast<float>(
        in_unit_interval(node, "rho", node.get("rho", r.keras_rule ? 0.9 : 0.99)));
    r.momentum = static_cast<float>(in_unit_interval(node, "momentum", node.get("momentum", 0.0)));
    r.epsilon = static_cast<float>(
        positive_number(node, "epsilon", node.get("epsilon", r.keras_rule ? 1e-7 : 1e-8)));
    r.centered = node.get("centered", false);
    r.weight_decay = static_cast<float>(node.get("weight_decay", 0.0));
    if (r.weight_decay < 0) node.fail("weight_decay", "must be >= 0");
  } else {
    opt.adam.beta1 = static_cast<float>(in_unit_interval(node, "beta1", node.get("beta1", 0.9)));
    opt.adam.beta2 = static_cast<float>(in_unit_interval(node, "beta2", node.get("beta2", 0.999)));
    opt.adam.epsilon =
        static_cast<float>(positive_number(node, "epsilon", node.get("epsilon", 1e-8)));
    // AdamW's default decay is PyTorch's (Keras' is 0.004).
    opt.adam.decoupled_weight_decay = opt.type == "adamw";
    opt.adam.weight_decay =
        static_cast<float>(node.get("weight_decay", opt.type == "adamw" ? 0.01 : 0.0));
    if (opt.adam.weight_decay < 0) node.fail("weight_decay", "must be >= 0");
  }
  // The schedules never exceed the base rate, so this bounds every step's factor.
  if (!opt.rate_fits_decay(opt.schedule.base_lr))
    node.fail("weight_decay",
              "times learning_rate must be < 1 (a decoupled weight decay scales the weights by 1 - "
              "lr * weight_decay every step)");
  opt.global_clipnorm = node.get("global_clipnorm", 0.0);
  if (opt.global_clipnorm < 0) node.fail("global_clipnorm", "must be > 0 (or 0: off)");
  {
    // Parsed when absent too, so the resolved config shows the schedule in force.
    ConfigNode s = node.optional_child("schedule");
    LrScheduleSpec& spec = opt.schedule;
    spec.type = s.choice("type", {"constant", "step", "cosine", "reduce_on_plateau"}, "constant");
    spec.warmup_steps = s.get<int64_t>("warmup_steps", 0);
    if (spec.warmup_steps < 0) s.fail("warmup_steps", "must be >= 0");
    if (spec.type == "step") {
      spec.step_size = positive(s, "step_size", s.require<int64_t>("step_size"));
      spec.gamma = positive_number(s, "gamma", s.get("gamma", 0.1));
    } else if (spec.type == "cosine") {
      spec.min_lr = s.get("min_lr", 0.0);
      if (spec.min_lr < 0 || spec.min_lr > spec.base_lr)
        s.fail("min_lr", "must be in [0, learning_rate]");
    } else if (spec.type == "reduce_on_plateau") {
      opt.plateau = parse_plateau(s, spec.base_lr);
    }
    s.finish();
  }
  node.finish();
  return opt;
}

}  // namespace ddp
