// Note [Keras model config]: Keras' optimizers and learning-rate schedules (as get_config() and a
// .keras file's compile_config describe them) as the config's optimizer section, and back.

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "train/config.h"

namespace ddp {
namespace {

// The optimizer section that the C++ API's optimizer becomes.
OptimizerConfig api_optimizer_config(const keras::Spec& optimizer) {
  YAML::Node root(YAML::NodeType::Map);
  root["optimizer"] = optimizer.node;
  return parse_optimizer_config(root, "compile");
}

// The optimizer section that a Keras optimizer's description becomes.
OptimizerConfig keras_optimizer_config(const nlohmann::json& optimizer) {
  return api_optimizer_config(keras::keras_optimizer(optimizer, "compile"));
}

// Keras' RMSprop (as get_config() and a .keras file's compile_config describe it) trains by
// Keras' rule, its settings and its defaults where they are left out.
TEST(KerasOptimizerConfig, RmspropByKerasRule) {
  const auto parsed = [](const nlohmann::json& settings) {
    return keras_optimizer_config({{"class_name", "RMSprop"}, {"config", settings}});
  };
  const auto expect_given = [](const OptimizerConfig& c) {
    EXPECT_EQ(c.type, "rmsprop");
    EXPECT_DOUBLE_EQ(c.schedule.base_lr, 0.01);
    EXPECT_TRUE(c.rmsprop.keras_rule);
    EXPECT_FLOAT_EQ(c.rmsprop.rho, 0.8f);
    EXPECT_FLOAT_EQ(c.rmsprop.momentum, 0.5f);
    EXPECT_FLOAT_EQ(c.rmsprop.epsilon, 1e-6f);
    EXPECT_TRUE(c.rmsprop.centered);
  };
  const OptimizerConfig given = parsed(nlohmann::json::parse(R"({"name": "rmsprop",
      "learning_rate": 0.01, "weight_decay": 0.004, "clipnorm": null, "global_clipnorm": null,
      "clipvalue": null, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null,
      "loss_scale_factor": null, "gradient_accumulation_steps": null, "rho": 0.8,
      "momentum": 0.5, "epsilon": 1e-06, "centered": true})"));
  expect_given(given);
  EXPECT_FLOAT_EQ(given.rmsprop.weight_decay, 0.004f);
  EXPECT_DOUBLE_EQ(given.decoupled_weight_decay(), 0.004f);
  const OptimizerConfig defaults = parsed(nlohmann::json::object());
  EXPECT_DOUBLE_EQ(defaults.schedule.base_lr, 0.001);
  EXPECT_FLOAT_EQ(defaults.rmsprop.rho, 0.9f);
  EXPECT_FLOAT_EQ(defaults.rmsprop.epsilon, 1e-7f);
  EXPECT_FALSE(defaults.rmsprop.centered);
  EXPECT_TRUE(defaults.rmsprop.keras_rule);
  // The C++ API's (and the Python module's) RMSprop is the same optimizer.
  expect_given(api_optimizer_config(keras::RMSprop(0.01, 0.8, 0.5, 1e-6, true)));
}

// Keras' Adagrad, Adamax, Nadam and Lion train by Keras' rules with their settings, their
// defaults where left out; the API's objects are the same optimizers; each serializes back as
// Keras' class.
TEST(KerasOptimizerConfig, AdaptiveOptimizersByKerasRule) {
  const auto parsed = [](const char* type, const nlohmann::json& settings) {
    return keras_optimizer_config({{"class_name", type}, {"config", settings}});
  };
  const auto described = [](const OptimizerConfig& c) {
    const AdaptiveHyper& h = c.adaptive;
    std::ostringstream out;
    out << c.type << " " << c.schedule.base_lr << " " << h.beta1 << " " << h.beta2 << " "
        << h.epsilon << " " << h.initial_accumulator << " " << h.momentum_decay << " "
        << h.weight_decay << (h.decoupled() ? " decoupled" : " l2");
    return out.str();
  };
  const nlohmann::json none = nlohmann::json::object();
  EXPECT_EQ(described(parsed("Adagrad", none)),
            "adagrad 0.001 0.9 0.999 1e-07 0.1 0.004 0 decoupled");
  EXPECT_EQ(described(parsed("Adamax", none)), "adamax 0.001 0.9 0.999 1e-07 0 0.004 0 decoupled");
  EXPECT_EQ(described(parsed("Nadam", none)), "nadam 0.001 0.9 0.999 1e-07 0 1 0 decoupled");
  EXPECT_EQ(described(parsed("Lion", none)), "lion 0.001 0.9 0.99 1e-08 0 0.004 0 decoupled");
  const struct {
    const char* type;
    nlohmann::json settings;
    keras::Spec api;
  } given[] = {
      {"Adagrad",
       {{"learning_rate", 0.01},
        {"initial_accumulator_value", 0.2},
        {"epsilon", 1e-6},
        {"weight_decay", 0.01}},
       keras::Adagrad(0.01, 0.2, 1e-6, 0.01)},
      {"Adamax",
       {{"learning_rate", 0.01}, {"beta_1", 0.8}, {"beta_2", 0.99}, {"epsilon", 1e-6}},
       keras::Adamax(0.01, 0.8, 0.99, 1e-6)},
      {"Nadam",
       {{"learning_rate", 0.01}, {"beta_1", 0.8}, {"beta_2", 0.99}, {"weight_decay", 0.01}},
       keras::Nadam(0.01, 0.8, 0.99, 1e-7, 0.01)},
      {"Lion",
       {{"learning_rate", 0.01}, {"beta_1", 0.8}, {"beta_2", 0.9}, {"weight_decay", 0.01}},
       keras::Lion(0.01, 0.8, 0.9, 0.01)},
  };
  for (const auto& [type, settings, api] : given) {
    const OptimizerConfig keras = parsed(type, settings);
    EXPECT_EQ(described(api_optimizer_config(api)), described(keras)) << type;
    const nlohmann::json back = keras::keras_optimizer_json(keras);
    EXPECT_EQ(back["class_name"], type);
    EXPECT_EQ(described(keras_optimizer_config(back)), described(keras)) << type;
  }
  // PyTorch's rules have no Keras form.
  YAML::Node root = YAML::Load("{optimizer: {type: nadam}}");
  EXPECT_TRUE(keras::keras_optimizer_json(parse_optimizer_config(root, "test")).is_null());
}

// The C++ API's (and the Python module's) optimizers take Keras' settings, in Keras' order.
TEST(KerasOptimizerConfig, ApiOptimizersTakeKerasSettings) {
  const OptimizerConfig adam = api_optimizer_config(keras::Adam(0.01, 0.8, 0.99, 1e-6));
  EXPECT_EQ(adam.type, "adam");
  EXPECT_TRUE(adam.adam.keras_rule);
  EXPECT_FLOAT_EQ(adam.adam.beta1, 0.8f);
  EXPECT_FLOAT_EQ(adam.adam.beta2, 0.99f);
  EXPECT_FLOAT_EQ(adam.adam.epsilon, 1e-6f);
  const OptimizerConfig adamw = api_optimizer_config(keras::AdamW(0.01, 0.1, 0.7));
  EXPECT_DOUBLE_EQ(adamw.decoupled_weight_decay(), 0.1f);
  EXPECT_FLOAT_EQ(adamw.adam.beta1, 0.7f);
  EXPECT_FLOAT_EQ(adamw.adam.epsilon, 1e-7f);  // Keras' default
  const OptimizerConfig sgd = api_optimizer_config(keras::SGD(0.1, 0.9, true, 0.01));
  EXPECT_TRUE(sgd.sgd.keras_rule && sgd.sgd.nesterov);
  EXPECT_DOUBLE_EQ(sgd.decoupled_weight_decay(), 0.01f);
  EXPECT_DOUBLE_EQ(api_optimizer_config(keras::RMSprop(0.01, 0.9, 0, 1e-7, false, 0.02))
                       .decoupled_weight_decay(),
                   0.02f);
}

// Keras decays every optimizer's weights decoupled (its base Optimizer does): Adam with a decay
// trains as AdamW, SGD by its Keras rule.
TEST(KerasOptimizerConfig, KerasWeightDecayIsDecoupled) {
  const auto parsed = [](const char* type, double decay) {
    return keras_optimizer_config({{"class_name", type}, {"config", {{"weight_decay", decay}}}});
  };
  const OptimizerConfig adam = parsed("Adam", 0.01);
  EXPECT_EQ(adam.type, "adamw");
  EXPECT_TRUE(adam.adam.keras_rule);
  EXPECT_FLOAT_EQ(adam.adam.weight_decay, 0.01f);
  EXPECT_EQ(parsed("Adam", 0).type, "adam");
  const OptimizerConfig sgd = parsed("SGD", 0.01);
  EXPECT_TRUE(sgd.sgd.keras_rule);
  EXPECT_DOUBLE_EQ(sgd.decoupled_weight_decay(), 0.01f);
}

// Keras' LearningRateSchedule objects, serialized as an optimizer's get_config() and a .keras
// file hold them, as the config's schedules (their values: test_optimizers.cpp, keras_reference).
TEST(KerasOptimizerConfig, LearningRateSchedulesAsTheConfigsSchedules) {
  const auto parsed = [](const char* schedule) {
    return keras_optimizer_config(
               {{"class_name", "SGD"},
                {"config", {{"learning_rate", nlohmann::json::parse(schedule)}}}})
        .schedule;
  };
  const LrScheduleSpec exponential = parsed(R"({"module": "keras.optimizers.schedules",
      "class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1,
      "decay_steps": 10, "decay_rate": 0.5, "staircase": true, "name": "ExponentialDecay"},
      "registered_name": null})");
  EXPECT_EQ(exponential.type, "exponential");
  EXPECT_DOUBLE_EQ(exponential.base_lr, 0.1);
  EXPECT_EQ(exponential.decay_steps, 10);
  EXPECT_DOUBLE_EQ(exponential.decay_rate, 0.5);
  EXPECT_TRUE(exponential.staircase);
  const LrScheduleSpec polynomial = parsed(R"({"class_name": "PolynomialDecay", "config": {
      "initial_learning_rate": 0.1, "decay_steps": 10, "power": 2.0, "cycle": false}})");
  EXPECT_EQ(polynomial.type, "polynomial");
  EXPECT_DOUBLE_EQ(polynomial.min_lr, 0.0001);  // Keras' end_learning_rate
  EXPECT_DOUBLE_EQ(polynomial.power, 2);
  const LrScheduleSpec cosine = parsed(R"({"class_name": "CosineDecay", "config": {
      "initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.1, "warmup_target": null,
      "warmup_steps": 0}})");
  EXPECT_EQ(cosine.type, "cosine");
  EXPECT_EQ(cosine.decay_steps, 10);
  EXPECT_DOUBLE_EQ(cosine.min_lr, 0.1 * 0.1);
  const LrScheduleSpec piecewise = parsed(R"({"class_name": "PiecewiseConstantDecay",
      "config": {"boundaries": [10, 20], "values": [0.1, 0.05, 0.01]}})");
  EXPECT_EQ(piecewise.type, "piecewise_constant");
  EXPECT_DOUBLE_EQ(piecewise.base_lr, 0.1);
  EXPECT_EQ(piecewise.values, (std::vector<double>{0.1, 0.05, 0.01}));
  EXPECT_EQ(parsed(R"({"class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.1,
      "decay_steps": 10, "decay_rate": 0.5}})")
                .type,
            "inverse_time");
  // What ddp-trainer's schedules cannot do: one line naming it.
  const auto refused = [&](const char* schedule) {
    try {
      parsed(schedule);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no ConfigError");
  };
  EXPECT_EQ(refused(R"({"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.0,
      "decay_steps": 10, "warmup_target": 0.1, "warmup_steps": 5}})"),
            "compile: the optimizer SGD: its schedule CosineDecay: warmup_target 0.1; "
            "ddp-trainer's schedules do not have it");
  EXPECT_EQ(refused(R"({"class_name": "CosineDecayRestarts", "config": {}})"),
            "compile: the optimizer SGD: the learning-rate schedule CosineDecayRestarts is not one "
            "ddp-trainer has (CosineDecay, ExponentialDecay, InverseTimeDecay, "
            "PiecewiseConstantDecay, PolynomialDecay)");
}

// The reverse, for a saved model's compile_config: each optimizer by Keras' rule, under each
// schedule Keras has, serializes as Keras' class with its settings, which read back as the same
// optimizer; what Keras has no form of serializes as null (the model saved uncompiled).
TEST(KerasOptimizerConfig, OptimizersSerializeAsKerasAndReadBack) {
  const auto round_trip = [](const OptimizerConfig& c) {
    const nlohmann::json keras = keras::keras_optimizer_json(c);
    EXPECT_FALSE(keras.is_null());
    return std::pair{keras, keras_optimizer_config(keras)};
  };
  const auto expect_same_schedule = [](const LrScheduleSpec& a, const LrScheduleSpec& b) {
    EXPECT_EQ(a.type, b.type);
    EXPECT_DOUBLE_EQ(a.base_lr, b.base_lr);
    EXPECT_EQ(a.decay_steps, b.decay_steps);
    EXPECT_DOUBLE_EQ(a.decay_rate, b.decay_rate);
    EXPECT_EQ(a.staircase, b.staircase);
    EXPECT_NEAR(a.min_lr, b.min_lr, 1e-15);
    EXPECT_DOUBLE_EQ(a.power, b.power);
    EXPECT_EQ(a.boundaries, b.boundaries);
    EXPECT_EQ(a.values, b.values);
  };
  const auto keras_schedule = [&](const std::string& schedule) {
    OptimizerConfig c =
        keras_optimizer_config({{"class_name", "RMSprop"},
                                {"config",
                                 {{"learning_rate", nlohmann::json::parse(schedule)},
                                  {"momentum", 0.5},
                                  {"centered", true},
                                  {"rho", 0.8},
                                  {"epsilon", 1e-6},
                                  {"weight_decay", 0.01}}}});
    const auto [keras, back] = round_trip(c);
    EXPECT_EQ(keras["class_name"], "RMSprop");
    EXPECT_EQ(keras["config"]["rho"], 0.8);  // float32's shortest decimal, not 0.800000011920929
    EXPECT_EQ(back.rmsprop.momentum, c.rmsprop.momentum);
    EXPECT_EQ(back.rmsprop.centered, c.rmsprop.centered);
    EXPECT_EQ(back.rmsprop.epsilon, c.rmsprop.epsilon);
    EXPECT_EQ(back.rmsprop.weight_decay, c.rmsprop.weight_decay);
    expect_same_schedule(back.schedule, c.schedule);
  };
  keras_schedule(R"({"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1,
      "decay_steps": 10, "decay_rate": 0.5, "staircase": true}})");
  keras_schedule(R"({"class_name": "InverseTimeDecay", "config": {"initial_learning_rate": 0.1,
      "decay_steps": 7, "decay_rate": 0.25}})");
  keras_schedule(R"({"class_name": "PolynomialDecay", "config": {"initial_learning_rate": 0.1,
      "decay_steps": 10, "power": 2.0, "end_learning_rate": 0.001}})");
  keras_schedule(R"({"class_name": "CosineDecay", "config": {"initial_learning_rate": 0.1,
      "decay_steps": 10, "alpha": 0.1}})");
  keras_schedule(R"({"class_name": "PiecewiseConstantDecay", "config": {"boundaries": [10, 20],
      "values": [0.1, 0.05, 0.01]}})");
  keras_schedule("0.003");

  const OptimizerConfig adamw = keras_optimizer_config(
      {{"class_name", "AdamW"},
       {"config", {{"learning_rate", 0.01}, {"beta_1", 0.8}, {"epsilon", 0.01}}}});
  const auto [adamw_keras, adamw_back] = round_trip(adamw);
  EXPECT_EQ(adamw_keras["class_name"], "AdamW");
  EXPECT_EQ(adamw_keras["config"]["weight_decay"], 0.004);
  EXPECT_EQ(adamw_back.type, "adamw");
  EXPECT_EQ(adamw_back.adam.beta1, 0.8f);
  EXPECT_EQ(adamw_back.adam.epsilon, 0.01f);
  EXPECT_EQ(adamw_back.adam.weight_decay, 0.004f);
  const OptimizerConfig adam = keras_optimizer_config({{"class_name", "Adam"}});
  const auto [adam_keras, adam_back] = round_trip(adam);
  EXPECT_EQ(adam_keras["class_name"], "Adam");
  EXPECT_TRUE(adam_keras["config"]["weight_decay"].is_null());
  EXPECT_EQ(adam_back.type, "adam");
  EXPECT_EQ(adam_back.adam.epsilon, 1e-7f);
  const OptimizerConfig sgd = keras_optimizer_config(
      {{"class_name", "SGD"}, {"config", {{"momentum", 0.9}, {"nesterov", true}}}});
  const auto [sgd_keras, sgd_back] = round_trip(sgd);
  EXPECT_EQ(sgd_keras["config"]["momentum"], 0.9);
  EXPECT_TRUE(sgd_back.sgd.nesterov);
  EXPECT_TRUE(sgd_back.sgd.keras_rule);
  EXPECT_FALSE(sgd_back.use_ema);
  EXPECT_EQ(sgd_keras["config"]["use_ema"], false);
  // Note [weight average]: Keras' use_ema and its settings; ignored without it, as Keras does.
  const OptimizerConfig averaged = keras_optimizer_config(
      {{"class_name", "SGD"},
       {"config", {{"use_ema", true}, {"ema_momentum", 0.9}, {"ema_overwrite_frequency", 5}}}});
  const auto [averaged_keras, averaged_back] = round_trip(averaged);
  EXPECT_TRUE(averaged_back.use_ema);
  EXPECT_DOUBLE_EQ(averaged_back.ema_momentum, 0.9);
  EXPECT_EQ(averaged_back.ema_overwrite_frequency, 5);
  EXPECT_EQ(averaged_keras["config"]["ema_momentum"], 0.9);
  EXPECT_EQ(averaged_keras["config"]["ema_overwrite_frequency"], 5);
  const OptimizerConfig unused = keras_optimizer_config(
      {{"class_name", "SGD"}, {"config", {{"use_ema", false}, {"ema_momentum", 0.5}}}});
  EXPECT_FALSE(unused.use_ema);
  EXPECT_TRUE(keras::keras_optimizer_json(unused)["config"]["ema_overwrite_frequency"].is_null());
  // The C++ API's: a copy of the optimizer that keeps the average.
  const keras::Spec plain = keras::SGD(0.1, 0.9);
  const OptimizerConfig with = api_optimizer_config(keras::with_weight_average(plain, 0.8, 3));
  EXPECT_TRUE(with.use_ema);
  EXPECT_DOUBLE_EQ(with.ema_momentum, 0.8);
  EXPECT_EQ(with.ema_overwrite_frequency, 3);
  EXPECT_FALSE(api_optimizer_config(plain).use_ema);

  // PyTorch's rules, a warm-up, PyTorch's step schedule and a cosine over the whole run have no
  // Keras form.
  OptimizerConfig pytorch = sgd;
  pytorch.sgd.keras_rule = false;
  EXPECT_TRUE(keras::keras_optimizer_json(pytorch).is_null());
  for (const char* type : {"step", "cosine"}) {
    OptimizerConfig other = adam;
    other.schedule.type = type;
    EXPECT_TRUE(keras::keras_optimizer_json(other).is_null()) << type;
  }
  OptimizerConfig warm = adam;
  warm.schedule.warmup_steps = 5;
  EXPECT_TRUE(keras::keras_optimizer_json(warm).is_null());
}

}  // namespace
}  // namespace ddp
