#include "train/optimizer_config.h"

#include "optim/adam.h"
#include "optim/adaptive_optimizer.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"

namespace ddp {
namespace {

// piecewise_constant's boundaries and values, which the learning rate's default comes from.
void read_piecewise(ConfigNode& schedule, LrScheduleSpec& spec) {
  spec.boundaries = schedule.require<std::vector<int64_t>>("boundaries");
  for (size_t i = 0; i < spec.boundaries.size(); ++i)
    if (spec.boundaries[i] < 0 || (i > 0 && spec.boundaries[i] <= spec.boundaries[i - 1]))
      schedule.fail("boundaries", "must be increasing step counts >= 0");
  spec.values = schedule.require<std::vector<double>>("values");
  if (spec.values.size() != spec.boundaries.size() + 1)
    schedule.fail("values", "must be one more than the boundaries (" +
                                std::to_string(spec.boundaries.size() + 1) + "), got " +
                                std::to_string(spec.values.size()));
  for (const double v : spec.values)
    if (!(v > 0)) schedule.fail("values", "each rate must be > 0");
}

// The rest of the schedule, once the learning rate (spec.base_lr) is known.
void read_schedule(ConfigNode& s, OptimizerConfig& opt) {
  LrScheduleSpec& spec = opt.schedule;
  spec.warmup_steps = s.get<int64_t>("warmup_steps", 0);
  if (spec.warmup_steps < 0) s.fail("warmup_steps", "must be >= 0");
  const auto decay_steps = [&] {
    spec.decay_steps = positive(s, "decay_steps", s.require<int64_t>("decay_steps"));
  };
  const auto min_lr = [&] {
    spec.min_lr = s.get("min_lr", 0.0);
    if (spec.min_lr < 0 || spec.min_lr > spec.base_lr)
      s.fail("min_lr", "must be in [0, learning_rate]");
  };
  if (spec.type == "step") {
    spec.step_size = positive(s, "step_size", s.require<int64_t>("step_size"));
    spec.gamma = positive_number(s, "gamma", s.get("gamma", 0.1));
  } else if (spec.type == "cosine") {
    min_lr();
    spec.decay_steps = s.get<int64_t>("decay_steps", 0);
    if (spec.decay_steps < 0)
      s.fail("decay_steps", "must be > 0 (or 0: the whole run after warm-up)");
  } else if (spec.type == "exponential" || spec.type == "inverse_time") {
    decay_steps();
    spec.decay_rate = s.require<double>("decay_rate");
    // The rate never grows, so the decoupled weight decay's bound holds at every step.
    if (spec.type == "exponential" ? !(spec.decay_rate > 0 && spec.decay_rate <= 1)
                                   : !(spec.decay_rate >= 0))
      s.fail("decay_rate", spec.type == "exponential" ? "must be in (0, 1]" : "must be >= 0");
    spec.staircase = s.get("staircase", false);
  } else if (spec.type == "polynomial") {
    decay_steps();
    min_lr();
    spec.power = positive_number(s, "power", s.get("power", 1.0));
  } else if (spec.type == "reduce_on_plateau") {
    opt.plateau = parse_plateau(s, spec.base_lr);
  }
  s.finish();
}

// Adagrad's, Adamax's, NAdam's or Lion's settings (AdaptiveHyper), with the rule's defaults.
AdaptiveHyper read_adaptive(ConfigNode& node, const std::string& type, bool keras_rule) {
  using Kind = AdaptiveHyper::Kind;
  AdaptiveHyper h;
  h.kind = type == "adagrad"  ? Kind::kAdagrad
           : type == "adamax" ? Kind::kAdamax
           : type == "nadam"  ? Kind::kNadam
                              : Kind::kLion;
  h.keras_rule = keras_rule && h.kind != Kind::kLion;
  if (h.kind == Kind::kAdagrad) {
    h.initial_accumulator =
        static_cast<float>(node.get("initial_accumulator_value", h.keras_rule ? 0.1 : 0.0));
    if (h.initial_accumulator < 0) node.fail("initial_accumulator_value", "must be >= 0");
  } else {
    h.beta1 = static_cast<float>(in_unit_interval(node, "beta1", node.get("beta1", 0.9)));
    h.beta2 = static_cast<float>(
        in_unit_interval(node, "beta2", node.get("beta2", h.kind == Kind::kLion ? 0.99 : 0.999)));
  }
  if (h.kind != Kind::kLion) {
    const double epsilon = !h.keras_rule ? (h.kind == Kind::kAdagrad ? 1e-10 : 1e-8) : 1e-7;
    h.epsilon = static_cast<float>(positive_number(node, "epsilon", node.get("epsilon", epsilon)));
  }
  if (h.kind == Kind::kNadam && !h.keras_rule)
    h.momentum_decay = static_cast<float>(
        positive_number(node, "momentum_decay", node.get("momentum_decay", 0.004)));
  if (h.kind == Kind::kNadam && h.keras_rule) {
    if (node.has("momentum_decay"))
      node.fail("momentum_decay",
                "Keras' rule has none (its momentum schedule is 0.96^t); leave "
                "it out, or use rule: pytorch");
    h.momentum_decay = 1;
  }
  h.weight_decay = static_cast<float>(node.get("weight_decay", 0.0));
  if (h.weight_decay < 0) node.fail("weight_decay", "must be >= 0");
  return h;
}

// The learning rate where the config gives none: its library's default.
double default_rate(const std::string& type, bool keras_rule) {
  if (type == "sgd") return 1e-2;
  if (keras_rule || type == "lion") return 1e-3;
  if (type == "rmsprop" || type == "adagrad") return 1e-2;
  return type == "adamax" || type == "nadam" ? 2e-3 : 1e-3;
}

}  // namespace

OptimizerConfig parse_optimizer(ConfigNode node) {
  OptimizerConfig opt;
  opt.type = node.choice("type",
                         {"sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam", "lion"});
  // Every optimizer follows PyTorch's rule or Keras' (SgdHyper, AdamHyper, RmspropHyper,
  // AdaptiveHyper), each with its library's defaults: RMSprop's rate 0.01, rho (PyTorch's alpha)
  // 0.99 and epsilon 1e-8 or 0.001, 0.9 and 1e-7; Adam's epsilon 1e-8 or 1e-7; AdamW's weight
  // decay 0.01 or 0.004; Adagrad's rate 0.01 or 0.001; Adamax's and NAdam's 0.002 or 0.001.
  const bool keras_rule = node.choice("rule", {"pytorch", "keras"}, "pytorch") == "keras";
  // Parsed when absent too, so the resolved config shows the schedule in force.
  ConfigNode schedule = node.optional_child("schedule");
  LrScheduleSpec& spec = opt.schedule;
  spec.type = schedule.choice("type",
                              {"constant", "step", "cosine", "exponential", "inverse_time",
                               "polynomial", "piecewise_constant", "reduce_on_plateau"},
                              "constant");
  if (spec.type == "piecewise_constant") read_piecewise(schedule, spec);
  const double default_lr =
      !spec.values.empty() ? spec.values.front() : default_rate(opt.type, keras_rule);
  spec.base_lr = positive_number(node, "learning_rate", node.get("learning_rate", default_lr));
  if (!spec.values.empty() && spec.base_lr != spec.values.front())
    node.fail("learning_rate",
              "must be the first of the piecewise_constant schedule's values (the rate up to its "
              "first boundary), or left out");
  read_schedule(schedule, opt);
  if (opt.type == "sgd") {
    opt.sgd.momentum =
        static_cast<float>(in_unit_interval(node, "momentum", node.get("momentum", 0.0)));
    opt.sgd.nesterov = node.get("nesterov", false);
    if (opt.sgd.nesterov && opt.sgd.momentum == 0) node.fail("nesterov", "needs momentum > 0");
    opt.sgd.keras_rule = keras_rule;
    opt.sgd.weight_decay = static_cast<float>(node.get("weight_decay", 0.0));
    if (opt.sgd.weight_decay < 0) node.fail("weight_decay", "must be >= 0");
  } else if (opt.type == "rmsprop") {
    RmspropHyper& r = opt.rmsprop;
    r.keras_rule = keras_rule;
    r.rho = static_cast<float>(
        in_unit_interval(node, "rho", node.get("rho", r.keras_rule ? 0.9 : 0.99)));
    r.momentum = static_cast<float>(in_unit_interval(node, "momentum", node.get("momentum", 0.0)));
    r.epsilon = static_cast<float>(
        positive_number(node, "epsilon", node.get("epsilon", r.keras_rule ? 1e-7 : 1e-8)));
    r.centered = node.get("centered", false);
    r.weight_decay = static_cast<float>(node.get("weight_decay", 0.0));
    if (r.weight_decay < 0) node.fail("weight_decay", "must be >= 0");
  } else if (opt.is_adaptive()) {
    opt.adaptive = read_adaptive(node, opt.type, keras_rule);
  } else {
    opt.adam.beta1 = static_cast<float>(in_unit_interval(node, "beta1", node.get("beta1", 0.9)));
    opt.adam.beta2 = static_cast<float>(in_unit_interval(node, "beta2", node.get("beta2", 0.999)));
    opt.adam.keras_rule = keras_rule;
    opt.adam.epsilon = static_cast<float>(
        positive_number(node, "epsilon", node.get("epsilon", keras_rule ? 1e-7 : 1e-8)));
    const double adamw_decay = keras_rule ? 0.004 : 0.01;
    opt.adam.weight_decay =
        static_cast<float>(node.get("weight_decay", opt.type == "adamw" ? adamw_decay : 0.0));
    if (opt.adam.weight_decay < 0) node.fail("weight_decay", "must be >= 0");
    // Keras decays any optimizer's weights decoupled: its Adam with a decay is AdamW.
    opt.adam.decoupled_weight_decay =
        opt.type == "adamw" || (keras_rule && opt.adam.weight_decay > 0);
  }
  if (!opt.rate_fits_decay(opt.schedule.peak()))
    node.fail("weight_decay",
              "times learning_rate must be < 1 (a decoupled weight decay scales the weights by 1 - "
              "lr * weight_decay every step)");
  opt.global_clipnorm = node.get("global_clipnorm", 0.0);
  if (opt.global_clipnorm < 0) node.fail("global_clipnorm", "must be > 0 (or 0: off)");
  // Note [weight average]: Keras' names and defaults.
  opt.use_ema = node.get("use_ema", false);
  if (opt.use_ema) {
    opt.ema_momentum = in_unit_interval(node, "ema_momentum", node.get("ema_momentum", 0.99));
    opt.ema_overwrite_frequency = node.get<int64_t>("ema_overwrite_frequency", 0);
    if (opt.ema_overwrite_frequency < 0)
      node.fail("ema_overwrite_frequency", "must be > 0 (or 0: at the end of training only)");
    opt.validate_average = node.get("validate_average", false);
  } else {
    for (const char* key : {"ema_momentum", "ema_overwrite_frequency", "validate_average"})
      if (node.has(key)) node.fail(key, "needs use_ema: true");
  }
  node.finish();
  return opt;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config, ComputeBackend& backend,
                                          size_t count) {
  std::unique_ptr<Optimizer> optimizer;
  if (config.type == "sgd")
    optimizer = std::make_unique<Sgd>(backend, count, config.sgd);
  else if (config.type == "rmsprop")
    optimizer = std::make_unique<Rmsprop>(backend, count, config.rmsprop);
  else if (config.is_adaptive())
    optimizer = std::make_unique<AdaptiveOptimizer>(backend, count, config.adaptive);
  else
    optimizer = std::make_unique<Adam>(backend, count, config.adam);
  if (config.use_ema) optimizer->keep_average(static_cast<float>(config.ema_momentum));
  return optimizer;
}

}  // namespace ddp
