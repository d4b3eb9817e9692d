// fit()'s callbacks in a world of one: Keras' EarlyStopping and ReduceLROnPlateau as config
// callbacks, on_epoch_end, which sees every epoch's record and can stop the fit, and the batch
// hooks.

#include <gtest/gtest.h>

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
  try {
    small_model().fit(world_of_one(), arrays_of(data), options);
    ADD_FAILURE() << "an optimizer accepted as a callback";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "Sequential: callbacks: 'adam' is not a callback fit() knows "
                 "(EarlyStopping, ReduceLROnPlateau)");
  }
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
  try {
    model.fit(world_of_one(), arrays_of(data), options);
    ADD_FAILURE() << "a fit inside a fit was accepted";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "Sequential: fit() from a callback of the fit in progress; fit again after it");
  }
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

}  // namespace
}  // namespace ddp
