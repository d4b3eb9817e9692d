// Note [early stopping]: Keras' EarlyStopping rule epoch by epoch, its config and its errors, and
// a trainer that stops, ends with the best epoch's weights, and says why.

#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "small_trainer_config.h"
#include "train/config_reader.h"
#include "train/early_stopping.h"
#include "train/trainer.h"

namespace ddp {
namespace {

EarlyStoppingConfig stopping(const std::string& monitor, int64_t patience, double min_delta = 0,
                             const std::string& mode = "auto") {
  return {.enabled = true,
          .monitor = monitor,
          .patience = patience,
          .min_delta = min_delta,
          .mode = mode,
          .restore_best_weights = false};
}

// observe() over `values`, epoch by epoch until it stops: which epochs were the best so far, and
// the epoch it stopped after (-1: never).
struct Verdicts {
  std::vector<bool> improved;
  int64_t stopped_epoch;
};
Verdicts run(const EarlyStoppingConfig& config, const std::vector<double>& values) {
  EarlyStopping es(config);
  Verdicts out{{}, -1};
  for (size_t e = 0; e < values.size() && !es.stopped(); ++e)
    out.improved.push_back(es.observe(static_cast<int64_t>(e), values[e]));
  out.stopped_epoch = es.state().stopped_epoch;
  return out;
}

// The cases follow keras.callbacks.EarlyStopping (Keras 3; tests/interop/keras_reference.py
// replays them through it): the wait grows each epoch, a value better than the best by more than
// min_delta resets it, and training stops once the wait reaches the patience after the first
// epoch.
TEST(EarlyStopping, FollowsKerasRule) {
  // Lower is better for a loss: 0.95 and 0.91 wait, the second wait reaches patience 2.
  Verdicts v = run(stopping("val_loss", 2), {1.0, 0.9, 0.95, 0.91, 0.5});
  EXPECT_EQ(v.improved, (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(v.stopped_epoch, 3);
  // min_delta: 0.96 is better than 1.0 by less than 0.05; patience 0 stops at once.
  v = run(stopping("loss", 0, 0.05), {1.0, 0.96, 0.5});
  EXPECT_EQ(v.improved, (std::vector<bool>{true, false}));
  EXPECT_EQ(v.stopped_epoch, 1);
  // ... but never at the first epoch, whose value is the first best whatever it is: a NaN, which
  // nothing improves on (Keras 3.15).
  v = run(stopping("loss", 0), {NAN, 1.0, 0.5});
  EXPECT_EQ(v.improved, (std::vector<bool>{true, false}));
  EXPECT_EQ(v.stopped_epoch, 1);
  // Higher is better for accuracy (auto): an equal value is no improvement.
  v = run(stopping("val_accuracy", 1), {0.5, 0.6, 0.6, 0.7});
  EXPECT_EQ(v.improved, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(v.stopped_epoch, 2);
  // Lower is better for MAE; `mode` overrides the name.
  v = run(stopping("mae", 1), {0.5, 0.6});
  EXPECT_EQ(v.stopped_epoch, 1);
  v = run(stopping("loss", 1, 0, "max"), {0.5, 0.6, 0.4});
  EXPECT_EQ(v.improved, (std::vector<bool>{true, true, false}));
  // Patience larger than the run: never stops, the best still tracked.
  v = run(stopping("loss", 10), {3, 2, 4, 1});
  EXPECT_EQ(v.improved, (std::vector<bool>{true, true, false, true}));
  EXPECT_EQ(v.stopped_epoch, -1);
}

// baseline: an improvement restarts the wait only past the baseline too; start_from_epoch: the
// epochs before it are not watched (the same cases in keras_reference.py).
TEST(EarlyStopping, BaselineAndStartFromEpochFollowKeras) {
  const auto with = [](std::optional<double> baseline, int64_t start_from_epoch) {
    EarlyStoppingConfig c = stopping("loss", 2);
    c.baseline = baseline;
    c.start_from_epoch = start_from_epoch;
    return c;
  };
  // Never past 0.5: the wait counts from the start, so the first epoch that does not improve,
  // the third, stops the run (without a baseline it would wait).
  Verdicts v = run(with(0.5, 0), {1.0, 0.9, 0.95, 0.94});
  EXPECT_EQ(v.improved, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(v.stopped_epoch, 2);
  EXPECT_EQ(run(with(std::nullopt, 0), {1.0, 0.9, 0.95, 0.94}).stopped_epoch, 3);
  // ... while improving epochs never stop it.
  v = run(with(0.5, 0), {1.0, 0.9, 0.8, 0.7, 0.6});
  EXPECT_EQ(v.improved, (std::vector<bool>(5, true)));
  EXPECT_EQ(v.stopped_epoch, -1);
  // 0.4 beats the baseline and restarts the wait: two epochs later it stops.
  v = run(with(0.5, 0), {1.0, 0.4, 0.45, 0.46, 0.3});
  EXPECT_EQ(v.improved, (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(v.stopped_epoch, 3);
  // Epochs 0 and 1 are a warm-up: epoch 2's 2.0 is the first best, patience 0 stops at epoch 3.
  EarlyStoppingConfig warm = with(std::nullopt, 2);
  warm.patience = 0;
  v = run(warm, {1.0, 0.5, 2.0, 3.0, 0.1});
  EXPECT_EQ(v.improved, (std::vector<bool>{false, false, true, false}));
  EXPECT_EQ(v.stopped_epoch, 3);
  // The stop line says which rule stopped the run.
  EarlyStopping es(with(0.5, 0));
  for (int64_t e = 0; e < 3; ++e) es.observe(e, std::vector<double>{1.0, 0.9, 0.95}[e]);
  EXPECT_EQ(es.stop_line(),
            "Epoch 3: early stopping: loss has not beaten the baseline 0.5 in 3 epochs (best 0.9, "
            "epoch 2)");
}

TEST(EarlyStopping, StateRoundTripsAndRefusesAnotherMonitor) {
  EarlyStopping es(stopping("val_loss", 3));
  es.observe(0, 0.7);
  es.observe(1, 0.8);
  EarlyStopping back(stopping("val_loss", 3));
  back.restore_json(es.to_json());
  EXPECT_EQ(back.state().best, 0.7);
  EXPECT_EQ(back.state().best_epoch, 0);
  EXPECT_EQ(back.state().wait, 1);
  EXPECT_FALSE(back.stopped());
  // JSON has no NaN or infinities: a NaN best comes back a NaN (nothing improves on it), an
  // infinite one infinite (anything finite does).
  EarlyStopping nan_best(stopping("val_loss", 3));
  nan_best.observe(0, NAN);
  back.restore_json(nan_best.to_json());
  EXPECT_TRUE(std::isnan(back.state().best));
  EXPECT_FALSE(back.observe(1, -1e30));
  EarlyStopping inf_best(stopping("val_loss", 3));
  inf_best.observe(0, INFINITY);
  back.restore_json(inf_best.to_json());
  EXPECT_EQ(back.state().best, INFINITY);
  EXPECT_TRUE(back.observe(1, 1e30));

  EarlyStopping other(stopping("val_accuracy", 3));
  try {
    other.restore_json(es.to_json());
    ADD_FAILURE() << "accepted another monitor's state";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("val_loss"), std::string::npos) << e.what();
  }
  EXPECT_THROW(other.restore_json(R"({"monitor": "val_accuracy"})"), std::runtime_error);
  EXPECT_THROW(other.restore_json("not json"), std::runtime_error);
}

Config config_with(const std::vector<std::string>& overrides) {
  return test::small_config(overrides, "early.yaml");
}

std::string config_error(const std::vector<std::string>& overrides) {
  return test::small_trainer_error(overrides, "early.yaml");
}

TEST(EarlyStoppingConfig, DefaultsAndErrorsNamingTheKey) {
  EXPECT_FALSE(config_with({}).training.early_stopping.enabled);
  const EarlyStoppingConfig c =
      config_with({"training.early_stopping.patience=2"}).training.early_stopping;
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.monitor, "val_loss");  // Keras' defaults
  EXPECT_EQ(c.patience, 2);
  EXPECT_EQ(c.min_delta, 0);
  EXPECT_EQ(c.mode, "auto");
  EXPECT_FALSE(c.restore_best_weights);
  EXPECT_FALSE(c.baseline);
  EXPECT_EQ(c.start_from_epoch, 0);
  const EarlyStoppingConfig d = config_with({"training.early_stopping.baseline=0.25",
                                             "training.early_stopping.start_from_epoch=3"})
                                    .training.early_stopping;
  EXPECT_EQ(d.baseline, 0.25);
  EXPECT_EQ(d.start_from_epoch, 3);
  EXPECT_EQ(config_error({"training.early_stopping.patience=-1"}),
            "early.yaml: training.early_stopping.patience: must be >= 0");
  EXPECT_EQ(config_error({"training.early_stopping.min_delta=-0.1"}),
            "early.yaml: training.early_stopping.min_delta: must be >= 0");
  EXPECT_EQ(config_error({"training.early_stopping.start_from_epoch=-1"}),
            "early.yaml: training.early_stopping.start_from_epoch: must be >= 0");
  EXPECT_NE(config_error({"training.early_stopping.baseline=low"})
                .find("early.yaml: training.early_stopping.baseline: "),
            std::string::npos);
  EXPECT_NE(config_error({"training.early_stopping.patiense=2"}).find("patiense"),
            std::string::npos);
  // The monitor must be something each epoch reports; val_ needs validation data (the trainer
  // above is given none).
  EXPECT_EQ(config_error({"training.early_stopping.monitor=auc"}),
            "early.yaml: training.early_stopping.monitor: 'auc' is not reported; each epoch "
            "reports loss, accuracy");
  EXPECT_EQ(config_error({"training.early_stopping.monitor=val_loss"}),
            "early.yaml: training.early_stopping.monitor: 'val_loss' needs validation data "
            "(data.test), and this run has none");
  EXPECT_EQ(config_error({"training.early_stopping.monitor=accuracy"}), "no ConfigError");
}

struct Trained {
  std::vector<float> params;
  std::vector<EpochRecord> records;
  std::string log;
};

Trained train(const std::vector<std::string>& overrides) {
  const Config c = config_with(overrides);
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  Trainer trainer(c, *comm, *backend, load_dataset(c.train_data, 0), load_dataset(*c.test_data, 0));
  std::ostringstream log;
  trainer.set_reporting(&log, ProgressMode::kOff, "");
  trainer.fit();
  EXPECT_TRUE(trainer.complete());
  return {trainer.params_to_host(), trainer.epoch_records(), log.str()};
}

// Only the first epoch is the best (no later one improves the loss by 100): patience 2 stops after
// the third, and restore_best_weights ends with the first epoch's weights.
TEST(EarlyStoppingTraining, StopsAndEndsWithTheBestEpochsWeights) {
  const std::vector<std::string> early = {"training.early_stopping.monitor=val_loss",
                                          "training.early_stopping.patience=2",
                                          "training.early_stopping.min_delta=100"};
  const Trained stopped = train(early);
  ASSERT_EQ(stopped.records.size(), 3u);
  EXPECT_NE(stopped.log.find("\nearly stopping: on val_loss (lower is better), patience 2, "
                             "min_delta 100\n"),
            std::string::npos)
      << stopped.log;
  EXPECT_NE(stopped.log.find("Epoch 3: early stopping: val_loss has not improved on "),
            std::string::npos)
      << stopped.log;
  // Without restoring, the weights are the third epoch's: those of a 3-epoch run.
  EXPECT_EQ(stopped.params, train({"training.epochs=3"}).params);

  std::vector<std::string> restoring = early;
  restoring.push_back("training.early_stopping.restore_best_weights=true");
  const Trained restored = train(restoring);
  EXPECT_EQ(restored.records.size(), 3u);
  EXPECT_NE(restored.log.find("min_delta 100, restoring the best epoch's weights at the end\n"),
            std::string::npos);
  EXPECT_NE(restored.log.find("restored the weights of epoch 1"), std::string::npos)
      << restored.log;
  EXPECT_EQ(restored.params, train({"training.epochs=1"}).params);  // bit for bit

  // A monitor that keeps improving never stops the run.
  const Trained improving = train({"training.early_stopping.monitor=loss"});
  EXPECT_EQ(improving.records.size(), 6u);
  EXPECT_EQ(improving.log.find(": early stopping:"), std::string::npos);
}

}  // namespace
}  // namespace ddp
