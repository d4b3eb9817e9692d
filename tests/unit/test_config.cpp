// Config validation: every bad value is a ConfigError naming the file and the key path.

#include <gtest/gtest.h>

#include <sstream>

#include "core/error.h"
#include "core/spelling.h"
#include "train/config.h"
#include "train/config_reader.h"
#include "train/metric_set.h"

namespace ddp {
namespace {

const char* kValid = R"(
seed: 3
data:
  train: {type: synthetic, samples: 100, features: 4, classes: 3}
model:
  input: [4]
  layers:
    - {type: dense, units: 8, activation: relu}
    - {type: dense, units: 3, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 2, global_batch_size: 10}
)";

Config parse_with(const std::vector<std::string>& overrides) {
  YAML::Node root = YAML::Load(kValid);
  for (const auto& o : overrides) apply_override(root, o);
  return parse_config(root, "test.yaml");
}

std::string error_with(const std::vector<std::string>& overrides) {
  try {
    parse_with(overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError";
  return "";
}

// Keras' validation_freq: every n epochs, or the listed 1-based epochs.
TEST(Config, ValidationFreqIsEveryNEpochsOrAList) {
  const TrainingConfig every = parse_with({}).training;
  EXPECT_TRUE(every.validates(1) && every.validates(2));
  const TrainingConfig third = parse_with({"training.validation_freq=3"}).training;
  EXPECT_FALSE(third.validates(1) || third.validates(2) || third.validates(4));
  EXPECT_TRUE(third.validates(3) && third.validates(6));
  const TrainingConfig listed = parse_with({"training.validation_freq=[2, 5]"}).training;
  EXPECT_FALSE(listed.validates(1) || listed.validates(3) || listed.validates(10));
  EXPECT_TRUE(listed.validates(2) && listed.validates(5));
  EXPECT_EQ(error_with({"training.validation_freq=0"}),
            "test.yaml: training.validation_freq: must be > 0, got 0");
  for (const char* list : {"[]", "[1, 0]"})
    EXPECT_EQ(error_with({std::string("training.validation_freq=") + list}),
              "test.yaml: training.validation_freq: a list of the 1-based epochs to evaluate, "
              "each >= 1");
}

TEST(Config, ParsesValidConfigWithDefaults) {
  const Config c = parse_with({});
  EXPECT_EQ(c.seed, 3u);
  EXPECT_EQ(c.train_data.samples, 100);
  EXPECT_EQ(c.layers.size(), 2u);
  EXPECT_EQ(c.layers[1].activation, "softmax");
  EXPECT_EQ(c.optimizer.type, "adam");
  EXPECT_DOUBLE_EQ(c.optimizer.schedule.base_lr, 0.01);
  EXPECT_FLOAT_EQ(c.optimizer.adam.beta2, 0.999f);
  EXPECT_EQ(c.training.batch_mode, BatchMode::kGlobal);
  EXPECT_EQ(c.training.batch_size, 10);
  EXPECT_EQ(c.training.tail, TailPolicy::kDrop);
  EXPECT_EQ(c.training.matmul, MatmulPrecision::kFloat32);
  // The resolved copy carries the defaults that were applied.
  EXPECT_EQ(c.resolved["optimizer"]["beta1"].as<double>(), 0.9);
  EXPECT_EQ(c.resolved["training"]["tail"].as<std::string>(), "drop");
  EXPECT_EQ(c.resolved["model"]["layers"][0]["units"].as<int>(), 8);
  // ... including a schedule the file did not mention, and numbers as short as they read back.
  EXPECT_EQ(c.resolved["optimizer"]["schedule"]["type"].as<std::string>(), "constant");
  const std::string written = YAML::Dump(c.resolved);
  EXPECT_NE(written.find("beta1: 0.9\n"), std::string::npos) << written;
  EXPECT_NE(written.find("epsilon: 1e-08\n"), std::string::npos) << written;
}

TEST(Config, OverridesApply) {
  const Config c = parse_with({"optimizer.learning_rate=0.5", "model.layers.0.units=16",
                               "training.tail=pad", "training.tf32=true"});
  EXPECT_DOUBLE_EQ(c.optimizer.schedule.base_lr, 0.5);
  EXPECT_EQ(c.training.matmul, MatmulPrecision::kTf32);
  EXPECT_EQ(parse_with({"training.bf16_matmul=true"}).training.matmul, MatmulPrecision::kBf16);
  EXPECT_EQ(c.layers[0].units, 16);
  EXPECT_EQ(c.training.tail, TailPolicy::kPad);
}

TEST(Config, AdamWDecaysDecoupledWithPyTorchsDefault) {
  const Config adam = parse_with({"optimizer.weight_decay=0.2"});
  EXPECT_FALSE(adam.optimizer.adam.decoupled_weight_decay);
  EXPECT_FLOAT_EQ(adam.optimizer.adam.weight_decay, 0.2f);
  const Config adamw = parse_with({"optimizer.type=adamw", "optimizer.learning_rate=~"});
  EXPECT_TRUE(adamw.optimizer.adam.decoupled_weight_decay);
  EXPECT_FLOAT_EQ(adamw.optimizer.adam.weight_decay, 0.01f);
  EXPECT_DOUBLE_EQ(adamw.optimizer.schedule.base_lr, 1e-3);
  EXPECT_EQ(adamw.resolved["optimizer"]["weight_decay"].as<double>(), 0.01);
}

TEST(Config, EachRuleTakesItsLibrarysDefaults) {
  const Config pytorch = parse_with({"optimizer.type=rmsprop", "optimizer.learning_rate=~"});
  EXPECT_FALSE(pytorch.optimizer.rmsprop.keras_rule);
  EXPECT_DOUBLE_EQ(pytorch.optimizer.schedule.base_lr, 1e-2);
  EXPECT_FLOAT_EQ(pytorch.optimizer.rmsprop.rho, 0.99f);
  EXPECT_FLOAT_EQ(pytorch.optimizer.rmsprop.epsilon, 1e-8f);
  EXPECT_EQ(pytorch.resolved["optimizer"]["rule"].as<std::string>(), "pytorch");
  const Config keras = parse_with({"optimizer.type=rmsprop", "optimizer.learning_rate=~",
                                   "optimizer.rule=keras", "optimizer.centered=true"});
  EXPECT_TRUE(keras.optimizer.rmsprop.keras_rule);
  EXPECT_TRUE(keras.optimizer.rmsprop.centered);
  EXPECT_DOUBLE_EQ(keras.optimizer.schedule.base_lr, 1e-3);
  EXPECT_FLOAT_EQ(keras.optimizer.rmsprop.rho, 0.9f);
  EXPECT_FLOAT_EQ(keras.optimizer.rmsprop.epsilon, 1e-7f);
  // Adagrad: rate, epsilon and initial sum; Adamax and NAdam: rate and epsilon; Lion: one rule.
  const auto adaptive = [](const std::string& type, const std::string& rule) {
    const Config c = parse_with(
        {"optimizer.type=" + type, "optimizer.learning_rate=~", "optimizer.rule=" + rule});
    const AdaptiveHyper& h = c.optimizer.adaptive;
    std::ostringstream out;  // 6 significant digits: float settings read as their decimals
    out << c.optimizer.schedule.base_lr << " " << h.epsilon << " " << h.initial_accumulator << " "
        << h.momentum_decay << " " << h.beta2 << (h.decoupled() ? " decoupled" : " l2");
    return out.str();
  };
  EXPECT_EQ(adaptive("adagrad", "pytorch"), "0.01 1e-10 0 0.004 0.999 l2");
  EXPECT_EQ(adaptive("adagrad", "keras"), "0.001 1e-07 0.1 0.004 0.999 decoupled");
  EXPECT_EQ(adaptive("adamax", "pytorch"), "0.002 1e-08 0 0.004 0.999 l2");
  EXPECT_EQ(adaptive("nadam", "keras"), "0.001 1e-07 0 1 0.999 decoupled");
  EXPECT_EQ(adaptive("nadam", "pytorch"), "0.002 1e-08 0 0.004 0.999 l2");
  EXPECT_EQ(adaptive("lion", "pytorch"), "0.001 1e-08 0 0.004 0.99 decoupled");
  const Config adamw = parse_with({"optimizer.type=adamw", "optimizer.rule=keras"});
  EXPECT_TRUE(adamw.optimizer.adam.keras_rule);
  EXPECT_FLOAT_EQ(adamw.optimizer.adam.epsilon, 1e-7f);
  EXPECT_FLOAT_EQ(adamw.optimizer.adam.weight_decay, 0.004f);
  const Config adam = parse_with({"optimizer.rule=keras", "optimizer.weight_decay=0.1"});
  EXPECT_TRUE(adam.optimizer.adam.decoupled_weight_decay);  // Keras decays every optimizer so
  EXPECT_FALSE(parse_with({"optimizer.weight_decay=0.1"}).optimizer.adam.decoupled_weight_decay);
}

TEST(Config, PiecewiseConstantScheduleGivesTheLearningRate) {
  const Config c = parse_with({"optimizer.learning_rate=~",
                               "optimizer.schedule={type: piecewise_constant, boundaries: [100, "
                               "200], values: [0.01, 0.001, 0.0001]}"});
  EXPECT_DOUBLE_EQ(c.optimizer.schedule.base_lr, 0.01);
  EXPECT_EQ(c.optimizer.schedule.boundaries, (std::vector<int64_t>{100, 200}));
  EXPECT_DOUBLE_EQ(c.optimizer.schedule.peak(), 0.01);
  EXPECT_EQ(c.resolved["optimizer"]["learning_rate"].as<double>(), 0.01);
}

TEST(Config, MseIsMeanSquaredErrorWithMaeByDefault) {
  for (const char* name : {"loss=mse", "loss={type: mse}", "loss=mean_squared_error"}) {
    const Config config = parse_with({name});
    EXPECT_EQ(config.loss, LossKind::kMeanSquaredError) << name;
    EXPECT_EQ(config.metrics, std::vector<std::string>{"mae"}) << name;
  }
  EXPECT_EQ(parse_with({}).metrics, std::vector<std::string>{"accuracy"});
}

// Keras' longer metric names are ddp-trainer's metrics under those names; a name twice would be
// two columns of one name.
TEST(Config, KerasMetricNamesAreOtherNamesOfTheMetrics) {
  const Config config = parse_with({"metrics=[sparse_categorical_accuracy, accuracy]"});
  EXPECT_EQ(config.metrics, (std::vector<std::string>{"sparse_categorical_accuracy", "accuracy"}));
  EXPECT_EQ(metric_kind("sparse_categorical_accuracy"), "accuracy");
  EXPECT_EQ(metric_kind("mean_absolute_error"), "mae");
  EXPECT_TRUE(MetricSet::lower_is_better("mean_absolute_error"));
  EXPECT_FALSE(MetricSet::lower_is_better("categorical_accuracy"));
  EXPECT_EQ(error_with({"metrics=[mean_absolute_error]"}),
            "test.yaml: metrics: mae compares outputs with targets as numbers; it needs "
            "mean_squared_error");
  EXPECT_EQ(error_with({"metrics=[accuracy, accuracy]"}),
            "test.yaml: metrics: accuracy is listed twice");
  // Reported under the name given, with the value of the metric it is.
  const MetricSet metrics({"categorical_accuracy", "accuracy"},
                          LossKind::kSparseCategoricalCrossentropy, 3);
  std::vector<double> sums(metrics.sum_count(), 0.0);
  sums[0] = 3;  // correct
  sums[MetricSet::kSamples] = 4;
  const std::vector<MetricValue> values = metrics.values(sums);
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values[0].name, "categorical_accuracy");
  EXPECT_EQ(values[0].value, 0.75);
  EXPECT_EQ(values[1].value, 0.75);
}

TEST(Config, LabelSmoothingIsCategoricalCrossentropys) {
  EXPECT_EQ(parse_with({}).label_smoothing, 0);
  const Config smoothed =
      parse_with({"loss={type: categorical_crossentropy, label_smoothing: 0.1}"});
  EXPECT_EQ(smoothed.loss, LossKind::kCategoricalCrossentropy);
  EXPECT_DOUBLE_EQ(smoothed.label_smoothing, 0.1);
  for (const char* bad : {"loss={type: sparse_categorical_crossentropy, label_smoothing: 0.1}",
                          "loss={type: categorical_crossentropy, label_smoothing: 1}"}) {
    try {
      parse_with({bad});
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("loss.label_smoothing: "), std::string::npos)
          << e.what();
    }
  }
}

// Keras' from_logits: true says the model ends without a softmax, and is checked against it.
TEST(Config, FromLogitsIsAModelWithoutAFinalSoftmax) {
  const char* logits = "model.layers.1.activation=linear";
  for (const char* loss : {"loss={type: sparse_categorical_crossentropy, from_logits: true}",
                           "loss={type: categorical_crossentropy, from_logits: true}"})
    EXPECT_NO_THROW(parse_with({loss, logits})) << loss;
  EXPECT_NO_THROW(parse_with({"loss={type: sparse_categorical_crossentropy, from_logits: false}"}));
  EXPECT_EQ(error_with({"loss={type: sparse_categorical_crossentropy, from_logits: true}"}),
            "test.yaml: loss.from_logits: true, but the model ends in softmax, whose outputs are "
            "probabilities; drop the softmax (the loss applies it) or from_logits");
  EXPECT_EQ(error_with({"loss={type: binary_crossentropy, from_logits: true}", logits}),
            "test.yaml: loss.from_logits: binary_crossentropy takes a model ending in sigmoid, "
            "which it fuses; end the model in sigmoid instead");
  EXPECT_EQ(error_with({"loss={type: mse, from_logits: true}", logits}),
            "test.yaml: loss.from_logits: only the cross-entropies take logits");
}

// Note [gradient clipping]: the trainer reads the summed gradients before the step.
TEST(Config, GlobalClipnormKeepsTheSumsForTheTrainer) {
  EXPECT_FALSE(parse_with({}).training.grad_sync.sums_before_step);
  const Config clipped = parse_with({"optimizer.global_clipnorm=1.5"});
  EXPECT_DOUBLE_EQ(clipped.optimizer.global_clipnorm, 1.5);
  EXPECT_TRUE(clipped.training.grad_sync.sums_before_step);
}

struct BadCase {
  std::vector<std::string> overrides;
  std::string expected;
};

class ConfigErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigErrors, NameFileKeyAndValue) {
  const std::string message = error_with(GetParam().overrides);
  EXPECT_NE(message.find(GetParam().expected), std::string::npos) << message;
  EXPECT_EQ(message.rfind("test.yaml: ", 0), 0u) << message;
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigErrors,
    ::testing::Values(
        BadCase{{"optimizer.lerning_rate=0.1"},
                "optimizer.lerning_rate: unknown key (did you mean 'learning_rate'?)"},
        BadCase{{"training.epochs=~", "training.epoch=10"},
                "training.epochs: required key is missing; the config has 'epoch': a typo?"},
        BadCase{{"optimizer.type=adma"},
                "optimizer.type: unknown value 'adma', did you mean 'adam'? (expected one of"},
        BadCase{{"bogus=1"}, "bogus: unknown key"},
        BadCase{{"optimizer.type=adamw", "optimizer.weight_decay=100"},
                "optimizer.weight_decay: times learning_rate must be < 1"},
        BadCase{{"optimizer.global_clipnorm=-1"}, "optimizer.global_clipnorm: must be > 0"},
        BadCase{{"optimizer.schedule={type: exponential, decay_rate: 0.5}"},
                "optimizer.schedule.decay_steps: required key is missing"},
        BadCase{{"optimizer.schedule={type: exponential, decay_steps: 10, decay_rate: 2}"},
                "optimizer.schedule.decay_rate: must be in (0, 1]"},
        BadCase{{"optimizer.schedule={type: piecewise_constant, boundaries: [10, 5], values: [1, "
                 "2, 3]}"},
                "optimizer.schedule.boundaries: must be increasing step counts >= 0"},
        BadCase{{"optimizer.schedule={type: piecewise_constant, boundaries: [10], values: [1]}"},
                "optimizer.schedule.values: must be one more than the boundaries (2), got 1"},
        BadCase{{"optimizer.schedule={type: piecewise_constant, boundaries: [10], values: [0.1, "
                 "0.01]}"},
                "optimizer.learning_rate: must be the first of the piecewise_constant schedule's "
                "values"},
        // A later, larger value bounds the decoupled weight decay too.
        BadCase{{"optimizer.type=adamw", "optimizer.learning_rate=~",
                 "optimizer.schedule={type: piecewise_constant, boundaries: [10], values: [1, "
                 "200]}"},
                "optimizer.weight_decay: times learning_rate must be < 1"},
        BadCase{{"optimizer.type=rmsprop", "optimizer.rule=tensorflow"},
                "optimizer.rule: unknown value 'tensorflow'"},
        BadCase{{"optimizer.type=rmsprop", "optimizer.rho=1"},
                "optimizer.rho: must be in [0, 1), got 1"},
        BadCase{{"optimizer.type=nadam", "optimizer.rule=keras", "optimizer.momentum_decay=0.004"},
                "optimizer.momentum_decay: Keras' rule has none"},
        BadCase{{"optimizer.type=adagrad", "optimizer.initial_accumulator_value=-1"},
                "optimizer.initial_accumulator_value: must be >= 0"},
        BadCase{{"optimizer.type=lion", "optimizer.epsilon=1e-8"},
                "optimizer.epsilon: unknown key"},
        // PyTorch's rule adds the decay to the gradient, which no rate makes unsafe.
        BadCase{{"optimizer.type=rmsprop", "optimizer.rule=keras", "optimizer.weight_decay=1000"},
                "optimizer.weight_decay: times learning_rate must be < 1"},
        BadCase{{"optimizer.learning_rate=fast"},
                "optimizer.learning_rate: expected a number, got 'fast'"},
        BadCase{{"training.epochs=2.5"}, "training.epochs: expected an integer, got '2.5'"},
        BadCase{{"training.shuffle=maybe"}, "training.shuffle: expected true or false"},
        BadCase{{"training.tf32=true", "training.bf16_matmul=true"},
                "training.bf16_matmul: and tf32 both set the products' precision: choose one"},
        BadCase{{"model.layers.0.units=[1]"},
                "model.layers.0.units: expected an integer, got a list"},
        BadCase{{"model.layers.0.type=conv9"}, "model.layers.0.type: unknown value 'conv9'"},
        BadCase{{"model.layers.0.activation=hard_tanh"},
                "model.layers.0.activation: unknown value 'hard_tanh'"},
        BadCase{{"model.layers.0={type: leaky_relu, negative_slope: -0.5}"},
                "model.layers.0.negative_slope: must be >= 0, got -0.5"},
        BadCase{{"optimizer.type=lamb"}, "optimizer.type: unknown value 'lamb'"},
        BadCase{{"loss=hinge"}, "loss: unknown value 'hinge'"},
        BadCase{{"model.layers.0.units=0"}, "model.layers.0.units: must be > 0, got 0"},
        BadCase{{"optimizer.learning_rate=-0.1"}, "optimizer.learning_rate: must be > 0, got -0.1"},
        BadCase{{"optimizer.beta1=1"}, "optimizer.beta1: must be in [0, 1), got 1"},
        BadCase{{"optimizer.momentum=0.9"}, "optimizer.momentum: unknown key"},
        BadCase{{"training.epochs=0"}, "training.epochs: must be > 0, got 0"},
        BadCase{{"training.global_batch_size=-4"},
                "training.global_batch_size: must be > 0, got -4"},
        BadCase{{"training.batch_size_per_rank=4"},
                "training: give exactly one of global_batch_size"},
        BadCase{{"data.train.samples=0"}, "data.train.samples: must be > 0"},
        BadCase{{"data.train.classes=4"},
                "data.train.classes: 4 classes, but the model's last layer has 3 units"},
        BadCase{{"data.train.type=parquet"}, "data.train.type: unknown value 'parquet'"},
        BadCase{{"model.input=[4, 0]"}, "model.input: dimensions must be > 0"},
        BadCase{{"model.layers=[]"}, "model.layers: expected a non-empty list"},
        BadCase{{"optimizer.schedule.type=step"},
                "optimizer.schedule.step_size: required key is missing"},
        BadCase{{"data.train.features=~"}, "data.train.features: required key is missing"},
        // Not UTF-8 (a Latin-1 'e' with acute): shown escaped, refused before any checkpoint.
        BadCase{{"data.train.type=csv", "data.train.path=caf\xE9.csv", "data.train.features=~",
                 "data.train.samples=~", "data.train.classes=~"},
                "data.train.path: is not UTF-8 text ('caf\\xE9.csv')"},
        BadCase{{"loss=\xC0\xAF"}, "loss: is not UTF-8 text ('\\xC0\\xAF')"},
        // A list item that is not an integer is named by its index; a mapping is not a list
        // (found by the config fuzzer: it once reached yaml-cpp's InvalidNode).
        BadCase{{"model.input=[4, .nan]"}, "model.input.1: expected an integer, got '.nan'"},
        BadCase{{"model.input={a: 1}"},
                "model.input: expected a list of integers, got a mapping"}));

TEST(Config, MissingSectionAndSyntaxErrors) {
  EXPECT_THROW(parse_config(YAML::Load("data: {}"), "x.yaml"), ConfigError);
  try {
    load_config("/nonexistent/dir/x.yaml", {});
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.yaml: cannot open"),
              std::string::npos);
  }
}

TEST(Config, OverrideSyntaxErrors) {
  YAML::Node root = YAML::Load(kValid);
  EXPECT_THROW(apply_override(root, "no_equals_sign"), ConfigError);
  EXPECT_THROW(apply_override(root, "model.layers.9.units=3"), ConfigError);
  EXPECT_THROW(apply_override(root, "model.layers.x.units=3"), ConfigError);
  // Into a value: one line naming the override and the value, not yaml-cpp's exception.
  for (const char* into_value : {"loss.type=categorical_crossentropy", "seed.x.y=1"}) {
    try {
      apply_override(root, into_value);
      ADD_FAILURE() << into_value << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("is the value '"), std::string::npos) << e.what();
    }
  }
}

TEST(Config, ExpandRank) {
  EXPECT_EQ(expand_rank("/data/{rank}/x_{rank}.csv", 3), "/data/3/x_3.csv");
  EXPECT_EQ(expand_rank("plain.csv", 1), "plain.csv");
}

// "Did you mean": typos of one edit per three characters, swaps included; nothing far off.
TEST(Spelling, ClosestMatchFindsTyposOnly) {
  const std::vector<std::string> keys = {"epochs", "shuffle", "learning_rate", "tail"};
  EXPECT_EQ(closest_match("epoch", keys), "epochs");
  EXPECT_EQ(closest_match("shufle", keys), "shuffle");
  EXPECT_EQ(closest_match("lerning_rate", keys), "learning_rate");
  EXPECT_EQ(closest_match("tial", keys), "tail");  // a swap is one edit
  EXPECT_EQ(closest_match("seed", keys), std::nullopt);
  EXPECT_EQ(closest_match("x", {"y"}), std::nullopt) << "a different word, not a typo";
}

}  // namespace
}  // namespace ddp
