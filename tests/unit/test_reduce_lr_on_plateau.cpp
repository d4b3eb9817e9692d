// Note [reduce on plateau]: Keras' ReduceLROnPlateau rule epoch by epoch (patience, min_delta,
// cooldown, min_lr), its config and errors, and a trainer whose lowered rate is the rate a run
// stopped and continued with that rate uses, bit for bit; Note [rate set by a callback] in the
// trainer's state.

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "small_trainer_config.h"
#include "train/config_reader.h"
#include "train/reduce_lr_on_plateau.h"
#include "train/trainer.h"

namespace ddp {
namespace {

PlateauConfig plateau(const std::string& monitor, int64_t patience, double factor,
                      double min_delta = 1e-4, int64_t cooldown = 0, double min_lr = 0) {
  return {.enabled = true,
          .monitor = monitor,
          .factor = factor,
          .patience = patience,
          .min_delta = min_delta,
          .cooldown = cooldown,
          .min_lr = min_lr,
          .mode = "auto"};
}

// observe() over `values` from a base rate of 1: which epochs lowered the rate, and the rate after.
struct Reductions {
  std::vector<bool> reduced;
  double lr;
};
Reductions run(const PlateauConfig& config, const std::vector<double>& values) {
  ReduceLrOnPlateau p(config, 1.0);
  Reductions out{{}, 0};
  for (const double v : values) out.reduced.push_back(p.observe(v));
  out.lr = p.state().lr;
  EXPECT_EQ(p.scale(), out.lr);  // of a base rate of 1
  return out;
}

// The cases follow keras.callbacks.ReduceLROnPlateau (Keras 3; tests/interop/keras_reference.py
// replays them through it): a cooldown epoch counts down and
// clears the wait; an improvement is the new best; otherwise, out of cooldown, the wait grows and
// at the patience the rate is multiplied by the factor (not below min_lr) and the cooldown starts.
TEST(ReduceLrOnPlateau, FollowsKerasRule) {
  Reductions r = run(plateau("val_loss", 2, 0.5), {1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6});
  EXPECT_EQ(r.reduced, (std::vector<bool>{false, false, false, true, false, false, false}));
  EXPECT_EQ(r.lr, 0.5);
  // min_delta (Keras' default 1e-4): 0.99995 is no improvement on 1.0.
  r = run(plateau("loss", 1, 0.5), {1.0, 0.99995});
  EXPECT_EQ(r.reduced, (std::vector<bool>{false, true}));
  // Cooldown 2: the epoch after a reduction is cooled down, the next counts again (Keras counts
  // the cooldown down before it looks).
  r = run(plateau("loss", 1, 0.5, 1e-4, 2), {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(r.reduced, (std::vector<bool>{false, true, false, true, false, true}));
  EXPECT_EQ(r.lr, 0.125);
  // min_lr: 1 -> 0.1 -> 0.05 (not 0.01), then no more.
  r = run(plateau("loss", 0, 0.1, 1e-4, 0, 0.05), {1, 2, 3, 4});
  EXPECT_EQ(r.reduced, (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(r.lr, 0.05);
  // Higher is better for accuracy; a NaN first value is the best, which nothing improves on.
  r = run(plateau("val_accuracy", 1, 0.5), {0.5, 0.6, 0.6});
  EXPECT_EQ(r.reduced, (std::vector<bool>{false, false, true}));
  r = run(plateau("loss", 1, 0.5), {NAN, 1.0, NAN});
  EXPECT_EQ(r.reduced, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(r.lr, 0.25);
}

TEST(ReduceLrOnPlateau, StateRoundTripsAndRefusesAnotherMonitor) {
  ReduceLrOnPlateau p(plateau("val_loss", 2, 0.5, 1e-4, 3), 0.01);
  for (const double v : {0.7, 0.8, 0.9}) p.observe(v);
  ReduceLrOnPlateau back(plateau("val_loss", 2, 0.5, 1e-4, 3), 0.01);
  back.restore_json(p.to_json());
  EXPECT_EQ(back.state().best, 0.7);
  EXPECT_EQ(back.state().lr, 0.005);
  EXPECT_EQ(back.state().cooldown_left, 3);
  EXPECT_EQ(back.state().wait, 0);
  ReduceLrOnPlateau other(plateau("loss", 2, 0.5), 0.01);
  EXPECT_THROW(other.restore_json(p.to_json()), std::runtime_error);
  // A rate above the configured one cannot come from reducing it.
  ReduceLrOnPlateau lower_base(plateau("val_loss", 2, 0.5), 0.001);
  EXPECT_THROW(lower_base.restore_json(p.to_json()), std::runtime_error);
  EXPECT_THROW(back.restore_json("{}"), std::runtime_error);
}

// The callbacks' small model, 3 epochs.
Config config_with(std::vector<std::string> overrides) {
  overrides.insert(overrides.begin(), "training.epochs=3");
  return test::small_config(overrides, "plateau.yaml");
}

std::string config_error(std::vector<std::string> overrides) {
  overrides.insert(overrides.begin(), "training.epochs=3");
  return test::small_trainer_error(overrides, "plateau.yaml");
}

TEST(ReduceLrOnPlateauConfig, KerasDefaultsAndErrorsNamingTheKey) {
  const PlateauConfig c =
      config_with({"optimizer.schedule.type=reduce_on_plateau"}).optimizer.plateau;
  EXPECT_TRUE(c.enabled);
  EXPECT_EQ(c.monitor, "val_loss");
  EXPECT_EQ(c.factor, 0.1);
  EXPECT_EQ(c.patience, 10);
  EXPECT_EQ(c.min_delta, 1e-4);
  EXPECT_EQ(c.cooldown, 0);
  EXPECT_EQ(c.min_lr, 0);
  EXPECT_FALSE(config_with({}).optimizer.plateau.enabled);
  const std::string on = "optimizer.schedule.type=reduce_on_plateau";
  EXPECT_EQ(config_error({on, "optimizer.schedule.factor=1"}),
            "plateau.yaml: optimizer.schedule.factor: must be in (0, 1): the rate is multiplied "
            "by it");
  EXPECT_EQ(config_error({on, "optimizer.schedule.cooldown=-1"}),
            "plateau.yaml: optimizer.schedule.cooldown: must be >= 0");
  EXPECT_EQ(config_error({on, "optimizer.schedule.min_lr=0.1"}),
            "plateau.yaml: optimizer.schedule.min_lr: must be in [0, learning_rate]");
  // The default monitor, val_loss, needs validation data, which this run has none of.
  EXPECT_EQ(config_error({on}),
            "plateau.yaml: optimizer.schedule.monitor: 'val_loss' needs validation data "
            "(data.test), and this run has none");
  EXPECT_EQ(config_error({on, "optimizer.schedule.monitor=loss"}), "no ConfigError");
}

struct Trainers {
  std::unique_ptr<ComputeBackend> backend = make_cpu_backend();
  std::unique_ptr<Communicator> comm = make_local_communicator();
  std::unique_ptr<Trainer> make(const Config& c) {
    return std::make_unique<Trainer>(c, *comm, *backend, load_dataset(c.train_data, 0),
                                     std::nullopt);
  }
};

// No epoch after the first improves the loss by 100: with patience 1 the rate halves after epoch
// 2 (and 3), so epoch 3 runs at 0.005. That is a run stopped after 2 epochs and continued at
// 0.005, bit for bit.
TEST(ReduceLrOnPlateauTraining, LowersTheRateItSays) {
  Trainers t;
  std::unique_ptr<Trainer> reduced =
      t.make(config_with({"optimizer.schedule.type=reduce_on_plateau",
                          "optimizer.schedule.monitor=loss", "optimizer.schedule.patience=1",
                          "optimizer.schedule.factor=0.5", "optimizer.schedule.min_delta=100"}));
  std::ostringstream log;
  reduced->set_reporting(&log, ProgressMode::kOff, "");
  reduced->fit();
  EXPECT_NE(log.str().find("\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.005.\n"),
            std::string::npos)
      << log.str();
  // and again after epoch 3, which the run has no epoch left to use.
  EXPECT_NE(log.str().find("\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.0025.\n"),
            std::string::npos);

  // Each epoch's record (metrics.jsonl) holds the rate of its last step.
  std::vector<double> rates;
  for (const EpochRecord& r : reduced->epoch_records()) rates.push_back(r.learning_rate);
  EXPECT_EQ(rates, (std::vector<double>{0.01f, 0.01f, 0.005f}));

  std::unique_ptr<Trainer> first = t.make(config_with({}));
  first->fit(2 * first->steps_per_epoch());
  std::unique_ptr<Trainer> then = t.make(config_with({"optimizer.learning_rate=0.005"}));
  then->restore(first->capture(), "memory");
  then->fit();
  EXPECT_EQ(reduced->params_to_host(), then->params_to_host());  // bit for bit
  std::unique_ptr<Trainer> constant = t.make(config_with({}));
  constant->fit();
  EXPECT_NE(reduced->params_to_host(), constant->params_to_host());
}

// Note [rate set by a callback]: a rate an epoch observer asks for after the first epoch trains the
// epochs after it and travels in the trainer's state: a run stopped after two epochs and restored
// goes on at that rate, as the uninterrupted run does, bit for bit; under another schedule the
// schedule's rate stands.
TEST(RateSetByACallback, TravelsInTheTrainersState) {
  Trainers t;
  const auto set_after_first_epoch = [](Trainer& trainer) {
    trainer.set_epoch_observer([&trainer](const EpochRecord& record) {
      if (record.epoch == 1) trainer.request_learning_rate(0.004);
      trainer.agree_on_learning_rate();
      return false;
    });
  };
  std::unique_ptr<Trainer> whole = t.make(config_with({}));
  set_after_first_epoch(*whole);
  whole->fit();
  std::unique_ptr<Trainer> first = t.make(config_with({}));
  set_after_first_epoch(*first);
  first->fit(2 * first->steps_per_epoch());
  std::unique_ptr<Trainer> then = t.make(config_with({}));
  then->restore(first->capture(), "memory");
  EXPECT_FLOAT_EQ(then->next_learning_rate(), 0.004);
  then->fit();
  EXPECT_EQ(whole->params_to_host(), then->params_to_host());  // bit for bit
  std::unique_ptr<Trainer> constant = t.make(config_with({}));
  constant->fit();
  EXPECT_NE(whole->params_to_host(), constant->params_to_host());
  std::unique_ptr<Trainer> cosine = t.make(config_with({"optimizer.schedule.type=cosine"}));
  cosine->restore(first->capture(), "memory");
  EXPECT_LT(cosine->next_learning_rate(), 0.0035);  // the cosine's, two thirds of the way down
}

}  // namespace
}  // namespace ddp
