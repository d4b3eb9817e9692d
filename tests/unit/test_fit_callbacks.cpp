// fit()'s callbacks in a world of one: Keras' EarlyStopping and ReduceLROnPlateau as config
// callbacks, on_epoch_end, which sees every epoch's record and can stop the fit, the batch
// hooks, and the learning rate a callback sets.

#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/keras.h"
#include "core/error.h"
#include "data/dataset.h"
#include "keras_api_fixtures.h"

namespace ddp {
namespace {

// Note [early stopping] through fit's callbacks: no epoch after the first improves the loss by 100,
// so patience 1 stops after the second of 5 (the fourth from start_from_epoch 2); a callback fit()
// does not know is an error.
TEST(KerasApi, EarlyStoppingCallbackEndsTheFit) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  keras::FitOptions options{.epochs = 5, .batch_size = 32, .seed = 5, .verbose = false};
  EXPECT_EQ(small_model().fit(world_of_one(), arrays_of(data), options).epochs.size(), 5u);
  options.callbacks = {keras::EarlyStopping("loss", 1, 100.0, true)};
  const keras::Sequential model = small_model();
  EXPECT_EQ(model.config(options)["training"]["early_stopping"]["restore_best_weights"].as<bool>(),
            true);
  EXPECT_EQ(small_model().fit(world_of_one(), arrays_of(data), options).epochs.size(), 2u);
  // Watched from the third epoch (0-based 2), it stops after the fourth.
  options.callbacks = {keras::EarlyStopping("loss", 1, 100.0, false, "auto", std::nullopt, 2)};
  EXPECT_EQ(small_model().fit(world_of_one(), arrays_of(data), options).epochs.size(), 4u);
  options.callbacks = {keras::EarlyStopping("loss", 1, 0.0, false, "auto", 0.25)};
  EXPECT_EQ(model.config(options)["training"]["early_stopping"]["baseline"].as<double>(), 0.25);
  options.callbacks = {keras::Adam()};
  EXPECT_EQ(
      error_of<ConfigError>([&] { small_model().fit(world_of_one(), arrays_of(data), options); }),
      "Sequential: callbacks: 'adam' is not a callback fit() knows "
      "(EarlyStopping, ReduceLROnPlateau, BackupAndRestore, SwapEMAWeights)");
}

// Note [reduce on plateau] through fit's callbacks: the optimizer's schedule, which lowers the
// rate after the first epoch (patience 0; the loss never improves by 100): the first epoch is the
// constant rate's, the third is not.
TEST(KerasApi, ReduceLROnPlateauCallbackLowersTheRate) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  keras::FitOptions options{.epochs = 3, .batch_size = 32, .seed = 5, .verbose = false};
  const keras::History constant = small_model().fit(world_of_one(), arrays_of(data), options);
  options.callbacks = {keras::ReduceLROnPlateau("loss", 0.5, 0, 100.0)};
  EXPECT_EQ(small_model().config(options)["optimizer"]["schedule"]["type"].as<std::string>(),
            "reduce_on_plateau");
  const keras::History reduced = small_model().fit(world_of_one(), arrays_of(data), options);
  EXPECT_EQ(reduced.epochs[0].loss, constant.epochs[0].loss);
  EXPECT_NE(reduced.epochs[2].loss, constant.epochs[2].loss);
}

// on_epoch_end sees each epoch's record as the History holds it; returning true stops the fit
// after that epoch (Keras' model.stop_training); on_epoch_begin comes before each epoch.
TEST(KerasApi, OnEpochEndSeesEachEpochAndCanStopTheFit) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  std::vector<EpochRecord> seen;
  keras::FitOptions options{.epochs = 5, .batch_size = 32, .seed = 5, .verbose = false};
  options.on_epoch_end = [&seen](const EpochRecord& record) {
    seen.push_back(record);
    return record.epoch == 2;  // 1-based: stop after the second
  };
  std::vector<int64_t> begun;  // on_epoch_begin: before each epoch's first step, and its end
  options.on_epoch_begin = [&](int64_t epoch) {
    begun.push_back(epoch);
    EXPECT_EQ(seen.size() + 1, static_cast<size_t>(epoch));
  };
  const keras::History history = small_model().fit(world_of_one(), arrays_of(data), options);
  EXPECT_EQ(begun, (std::vector<int64_t>{1, 2}));
  options.on_epoch_begin = {};
  ASSERT_EQ(history.epochs.size(), 2u);
  ASSERT_EQ(seen.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(seen[e].epoch, static_cast<int64_t>(e) + 1);
    EXPECT_EQ(seen[e].loss, history.epochs[e].loss);
  }
  options.on_epoch_end = [](const EpochRecord&) { return false; };
  EXPECT_EQ(small_model().fit(world_of_one(), arrays_of(data), options).epochs.size(), 5u);
  // A fit from inside the fit is refused (it would replace the model being trained); the model
  // fits again afterwards.
  keras::Sequential model = small_model();
  options.on_epoch_end = [&](const EpochRecord&) {
    model.fit(world_of_one(), arrays_of(data), {.verbose = false});
    return false;
  };
  EXPECT_EQ(error_of<ConfigError>([&] { model.fit(world_of_one(), arrays_of(data), options); }),
            "Sequential: fit() from a callback of the fit in progress; fit again after it");
  EXPECT_EQ(
      model.fit(world_of_one(), arrays_of(data), {.epochs = 2, .verbose = false}).epochs.size(),
      2u);
}

// on_batch_begin and on_batch_end around each step, in order; the epoch's last step's logs are its
// record's loss and metrics (the running means computed as the epoch's).
TEST(KerasApi, OnBatchEndSeesTheEpochsRunningMeans) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  keras::FitOptions options{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = false};
  std::vector<std::string> calls;
  std::vector<BatchLogs> logs;
  options.on_batch_begin = [&](int64_t batch) {
    calls.push_back("begin " + std::to_string(batch));
  };
  options.on_batch_end = [&](const BatchLogs& l) {
    calls.push_back("end " + std::to_string(l.batch));
    logs.push_back(l);
  };
  options.on_epoch_end = [&](const EpochRecord& record) {
    calls.push_back("epoch " + std::to_string(record.epoch));
    return false;
  };
  const keras::History history = small_model().fit(world_of_one(), arrays_of(data), options);
  std::vector<std::string> want;
  for (int epoch = 1; epoch <= 2; ++epoch) {
    for (int batch = 0; batch < 4; ++batch)
      for (const char* call : {"begin ", "end "}) want.push_back(call + std::to_string(batch));
    want.push_back("epoch " + std::to_string(epoch));
  }
  EXPECT_EQ(calls, want);
  ASSERT_EQ(logs.size(), 8u);
  for (size_t e = 0; e < 2; ++e) {
    const BatchLogs& last = logs[e * 4 + 3];
    EXPECT_EQ(last.loss, history.epochs[e].loss);
    ASSERT_EQ(last.metrics.size(), 1u);
    EXPECT_EQ(last.metrics[0].name, "accuracy");
    EXPECT_EQ(last.metrics[0].value, history.epochs[e].metrics[0].value);
  }
  EXPECT_NE(logs[0].loss, logs[3].loss);  // a running mean, not the epoch's from the start
}

// Keras 3's model.stop_training: set in on_batch_end, the fit ends after that batch, the epoch's
// record covering the steps trained (with its evaluation and on_epoch_end), and the weights are
// those the uninterrupted fit had after the same step; set in on_epoch_begin, after the next
// batch; set in on_epoch_end (which returns false), after that epoch. It stays set after the
// fit, and the next fit starts with it cleared.
TEST(KerasApi, StopTrainingInABatchHookEndsTheFitAfterThatBatch) {
  const Dataset data = make_synthetic(128, 6, 4, 3);  // 4 steps an epoch
  const keras::FitOptions plain{.epochs = 3, .batch_size = 32, .seed = 5, .verbose = false};
  keras::Sequential whole = small_model();
  int64_t epoch = 0;
  std::vector<float> after_sixth_step;
  keras::FitOptions watched = plain;
  watched.on_epoch_begin = [&](int64_t e) { epoch = e; };
  watched.on_batch_end = [&](const BatchLogs& logs) {
    if (epoch == 2 && logs.batch == 1) after_sixth_step = values_of(whole.get_weights());
  };
  whole.fit(world_of_one(), arrays_of(data), watched);

  keras::Sequential model = small_model();
  keras::FitOptions options = watched;
  std::vector<std::string> calls;
  double last_batch_loss = 0;
  options.on_batch_end = [&](const BatchLogs& logs) {
    calls.push_back("end " + std::to_string(epoch) + "." + std::to_string(logs.batch));
    last_batch_loss = logs.loss;
    if (epoch == 2 && logs.batch == 1) model.set_stop_training(true);
  };
  options.on_epoch_end = [&](const EpochRecord& record) {
    calls.push_back("epoch " + std::to_string(record.epoch));
    return false;
  };
  const keras::History stopped =
      model.fit(world_of_one(), arrays_of(data), options, arrays_of(data));
  EXPECT_EQ(calls, (std::vector<std::string>{"end 1.0", "end 1.1", "end 1.2", "end 1.3", "epoch 1",
                                             "end 2.0", "end 2.1", "epoch 2"}));
  ASSERT_EQ(stopped.epochs.size(), 2u);
  EXPECT_EQ(stopped.epochs[0].steps_completed, 4);
  EXPECT_EQ(stopped.epochs[1].steps_completed, 2);
  EXPECT_EQ(stopped.epochs[1].steps, 4);
  EXPECT_EQ(stopped.epochs[1].loss, last_batch_loss);
  EXPECT_TRUE(stopped.epochs[1].val_loss.has_value());
  EXPECT_EQ(values_of(model.get_weights()), after_sixth_step);
  EXPECT_TRUE(model.stop_training());

  options.on_batch_end = {};
  options.on_epoch_end = {};
  options.on_epoch_begin = [&](int64_t e) {
    if (e == 2) model.set_stop_training(true);
  };
  const keras::History at_begin = model.fit(world_of_one(), arrays_of(data), options);
  ASSERT_EQ(at_begin.epochs.size(), 2u);
  EXPECT_EQ(at_begin.epochs[1].steps_completed, 1);
  options.on_epoch_begin = {};
  options.on_epoch_end = [&](const EpochRecord& record) {
    model.set_stop_training(record.epoch == 1);
    return false;
  };
  EXPECT_EQ(model.fit(world_of_one(), arrays_of(data), options).epochs.size(), 1u);
  EXPECT_EQ(model.fit(world_of_one(), arrays_of(data), plain).epochs.size(), 3u);
}

// Keras' validation_freq: the validation data are evaluated after every second epoch (or the
// listed ones), with the values every epoch would have had there, and training is unchanged;
// EarlyStopping on val_loss skips the epochs without one (patience 1 and a min_delta no epoch
// meets: evaluated every epoch it stops after the second, every second epoch after the fourth).
TEST(KerasApi, ValidationFreqEvaluatesEveryNthEpoch) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  const keras::FitOptions every{.epochs = 6, .batch_size = 32, .seed = 5, .verbose = false};
  const keras::History all =
      small_model().fit(world_of_one(), arrays_of(data), every, arrays_of(data));
  keras::FitOptions second = every;
  second.validation_freq = 2;
  const keras::History some =
      small_model().fit(world_of_one(), arrays_of(data), second, arrays_of(data));
  ASSERT_EQ(some.epochs.size(), 6u);
  for (size_t e = 0; e < 6; ++e) {
    EXPECT_EQ(some.epochs[e].loss, all.epochs[e].loss);
    EXPECT_EQ(some.epochs[e].val_loss.has_value(), e % 2 == 1) << "epoch " << e + 1;
    if (e % 2 == 1) {
      EXPECT_EQ(*some.epochs[e].val_loss, *all.epochs[e].val_loss);
    }
  }
  keras::FitOptions listed = every;
  listed.set = {"training.validation_freq=[1, 6]"};
  const keras::History ends =
      small_model().fit(world_of_one(), arrays_of(data), listed, arrays_of(data));
  for (size_t e = 0; e < 6; ++e)
    EXPECT_EQ(ends.epochs[e].val_loss.has_value(), e == 0 || e == 5) << "epoch " << e + 1;

  const keras::Spec stopping = keras::EarlyStopping("val_loss", 1, 100.0);
  keras::FitOptions watched = every;
  watched.callbacks = {stopping};
  EXPECT_EQ(
      small_model().fit(world_of_one(), arrays_of(data), watched, arrays_of(data)).epochs.size(),
      2u);
  second.callbacks = {stopping};
  EXPECT_EQ(
      small_model().fit(world_of_one(), arrays_of(data), second, arrays_of(data)).epochs.size(),
      4u);
}

// Note [rate set by a callback]: a rate set before the first step trains as the compiled rate
// would, bit for bit; one set at the second epoch's start leaves the first epoch as it was and
// changes the rest; one set after a batch trains the steps after it. The rate stays the
// optimizer's for the next fit, and the compiled Spec is not changed.
TEST(KerasApi, ACallbackSetsTheLearningRate) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  const keras::FitOptions plain{.epochs = 3, .batch_size = 32, .seed = 5, .verbose = false};
  const keras::History at_003 =
      small_model(keras::Adam(0.03)).fit(world_of_one(), arrays_of(data), plain);
  const keras::History at_001 = small_model().fit(world_of_one(), arrays_of(data), plain);
  const keras::Spec compiled = keras::Adam(0.01);
  keras::Sequential model = small_model(compiled);
  EXPECT_EQ(model.learning_rate(), 0.01);
  std::vector<double> seen;
  keras::FitOptions options = plain;
  options.on_epoch_begin = [&](int64_t epoch) {
    seen.push_back(model.learning_rate());
    if (epoch == 1) model.set_learning_rate(0.03);
  };
  const keras::History set_first = model.fit(world_of_one(), arrays_of(data), options);
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(set_first.epochs[e].loss, at_003.epochs[e].loss) << "epoch " << e + 1;
    EXPECT_FLOAT_EQ(set_first.epochs[e].learning_rate, 0.03);
  }
  ASSERT_EQ(seen.size(), 3u);  // the rate of the next step, a float as Keras' variable
  EXPECT_FLOAT_EQ(seen[0], 0.01);
  EXPECT_FLOAT_EQ(seen[1], 0.03);
  EXPECT_EQ(model.learning_rate(), 0.03);  // the next fit's
  EXPECT_EQ(compiled.node["learning_rate"].as<double>(), 0.01);
  const keras::History next = model.fit(world_of_one(), arrays_of(data), plain);
  EXPECT_FLOAT_EQ(next.epochs[0].learning_rate, 0.03);
  model.compile(compiled, "sparse_categorical_crossentropy", {"accuracy"});  // a new optimizer
  EXPECT_EQ(model.learning_rate(), 0.01);

  keras::Sequential later = small_model();
  options.on_epoch_begin = [&](int64_t epoch) {
    if (epoch == 2) later.set_learning_rate(0.03);
  };
  const keras::History set_second = later.fit(world_of_one(), arrays_of(data), options);
  EXPECT_EQ(set_second.epochs[0].loss, at_001.epochs[0].loss);
  EXPECT_NE(set_second.epochs[1].loss, at_001.epochs[1].loss);
  EXPECT_FLOAT_EQ(set_second.epochs[0].learning_rate, 0.01);
  EXPECT_FLOAT_EQ(set_second.epochs[1].learning_rate, 0.03);

  keras::Sequential batched = small_model();  // 4 steps an epoch: the last is the new rate's
  keras::FitOptions after_batch = plain;
  std::vector<double> step_rates;
  after_batch.on_batch_begin = [&](int64_t) { step_rates.push_back(batched.learning_rate()); };
  after_batch.on_batch_end = [&](const BatchLogs& logs) {
    if (logs.batch == 2) batched.set_learning_rate(0.03);
  };
  const keras::History by_batch = batched.fit(world_of_one(), arrays_of(data), after_batch);
  ASSERT_EQ(step_rates.size(), 12u);
  for (size_t step = 0; step < 12; ++step)
    EXPECT_FLOAT_EQ(step_rates[step], step < 3 ? 0.01 : 0.03) << "step " << step;
  EXPECT_EQ(by_batch.epochs[0].loss, at_001.epochs[0].loss);  // losses before each update
  EXPECT_NE(by_batch.epochs[1].loss, at_001.epochs[1].loss);
}

// Keras refuses to set a rate its schedule computes, and so does the API; a rate that is not
// positive is refused where it is set, outside a fit too (the optimizer keeps its rate).
TEST(KerasApi, SettingTheLearningRateRefusesSchedulesAndNonsense) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  keras::Sequential model = small_model();
  keras::FitOptions options{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = false};
  options.set = {"optimizer.schedule.type=cosine"};
  options.on_epoch_begin = [&](int64_t) { model.set_learning_rate(0.03); };
  EXPECT_EQ(error_of<ConfigError>([&] { model.fit(world_of_one(), arrays_of(data), options); }),
            "Sequential: optimizer.schedule: the learning rate is the cosine schedule's; a "
            "callback sets it only under a constant schedule (Keras refuses to set a "
            "LearningRateSchedule's rate too)");
  options.set = {};
  options.on_epoch_begin = [&](int64_t) { model.set_learning_rate(-1); };
  EXPECT_THROW(model.fit(world_of_one(), arrays_of(data), options), ConfigError);
  keras::Sequential decoupled = small_model(keras::AdamW(0.01, 0.01));  // rate x decay < 1
  options.on_epoch_begin = [&](int64_t) { decoupled.set_learning_rate(1000); };
  EXPECT_THROW(decoupled.fit(world_of_one(), arrays_of(data), options), ConfigError);
  EXPECT_EQ(error_of<ConfigError>([&] { model.set_learning_rate(0); }),
            "Sequential: optimizer.learning_rate: must be > 0, got 0");
  EXPECT_EQ(model.learning_rate(), 0.01);
  keras::Sequential uncompiled({keras::Dense(4, "softmax")}, {6});
  EXPECT_THROW(uncompiled.set_learning_rate(0.1), ConfigError);
}

// Note [run checkpoints]: a fit with BackupAndRestore that dies in its third epoch (an exception
// from a callback, before that epoch's checkpoint) continues, in a new model, from the second
// epoch's checkpoint and ends with the uninterrupted fit's weights, bit for bit (Adam's moments
// and step count come back too); its History holds the epochs it trained; the backup is gone
// after a fit that ends. Without BackupAndRestore, checkpoint keys are refused.
TEST(KerasApi, BackupAndRestoreContinuesAFitThatDied) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  const std::string dir = ::testing::TempDir() + "keras_backup";
  std::filesystem::remove_all(dir);
  keras::FitOptions options{.epochs = 4, .batch_size = 32, .seed = 5, .verbose = false};
  keras::Sequential whole = small_model();
  whole.fit(world_of_one(), arrays_of(data), options);
  options.callbacks = {keras::BackupAndRestore(dir)};
  keras::Sequential dying = small_model();
  keras::FitOptions dies = options;
  dies.on_epoch_end = [](const EpochRecord& record) -> bool {
    if (record.epoch == 3) throw std::runtime_error("killed");
    return false;
  };
  EXPECT_THROW(dying.fit(world_of_one(), arrays_of(data), dies), std::runtime_error);
  EXPECT_TRUE(std::filesystem::exists(dir + "/latest"));
  keras::Sequential resumed = small_model();
  const keras::History history = resumed.fit(world_of_one(), arrays_of(data), options);
  ASSERT_EQ(history.epochs.size(), 2u);
  EXPECT_EQ(history.epochs[0].epoch, 3);
  EXPECT_EQ(values_of(resumed.get_weights()), values_of(whole.get_weights()));
  EXPECT_FALSE(std::filesystem::exists(dir));
  keras::Sequential plain = small_model();  // and without the backup, a fresh start differs
  dies.callbacks = {};
  EXPECT_THROW(plain.fit(world_of_one(), arrays_of(data), dies), std::runtime_error);
  plain.fit(world_of_one(), arrays_of(data), {.epochs = 2, .batch_size = 32, .verbose = false});
  EXPECT_NE(values_of(plain.get_weights()), values_of(whole.get_weights()));

  options.callbacks = {};
  options.set = {"checkpoint.keep=3"};
  EXPECT_EQ(
      error_of<ConfigError>([&] { small_model().fit(world_of_one(), arrays_of(data), options); }),
      "Sequential: set: checkpoint.keep=3: a fit writes checkpoints only with a "
      "BackupAndRestore callback");
  options.callbacks = {keras::BackupAndRestore("")};
  options.set = {};
  EXPECT_THROW(small_model().fit(world_of_one(), arrays_of(data), options), ConfigError);
}

}  // namespace
}  // namespace ddp
