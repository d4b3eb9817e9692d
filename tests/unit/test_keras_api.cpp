// The C++ API (Note [C++ API]) in a world of one: arrays in memory train exactly as the same
// samples read from a CSV file named by a data Spec, and mistakes are the config's errors.

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "api/keras.h"
#include "core/error.h"
#include "data/dataset.h"

namespace ddp {
namespace {

keras::Runtime& world_of_one() {
  static int argc = 1;
  static char name[] = "unit_tests";
  static char* args[] = {name, nullptr};
  static char** argv = args;
  static keras::Runtime runtime(&argc, &argv);
  return runtime;
}

keras::Sequential small_model(const keras::Spec& optimizer = keras::Adam(0.01),
                              const keras::Spec& loss = {
                                  YAML::Node("sparse_categorical_crossentropy")}) {
  keras::Sequential model({keras::Dense(16, "relu"), keras::Dense(4, "softmax")}, {6});
  model.compile(optimizer, loss, {"accuracy"});
  return model;
}

keras::Arrays arrays_of(const Dataset& data) { return {{6}, data.features, data.labels}; }

TEST(KerasApi, ArraysTrainAsTheSameSamplesFromAFile) {
  const Dataset data = make_synthetic(200, 6, 4, 7);
  const std::string csv = ::testing::TempDir() + "keras_api.csv";
  {
    std::ofstream out(csv);
    out << "f0,f1,f2,f3,f4,f5,label\n";
    char value[32];
    for (int64_t i = 0; i < data.size(); ++i) {
      for (int64_t j = 0; j < 6; ++j) {
        std::snprintf(value, sizeof value, "%.9g,", data.features[i * 6 + j]);
        out << value;
      }
      out << data.labels[i] << '\n';
    }
  }
  const keras::FitOptions options{.epochs = 3, .batch_size = 32, .seed = 5, .verbose = false};
  const keras::History from_memory =
      small_model().fit(world_of_one(), arrays_of(data), options, arrays_of(data));
  const keras::History from_file =
      small_model().fit(world_of_one(), keras::csv(csv), options, keras::csv(csv));
  std::filesystem::remove(csv);
  ASSERT_EQ(from_memory.epochs.size(), 3u);
  ASSERT_EQ(from_file.epochs.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(from_memory.epochs[e].loss, from_file.epochs[e].loss) << "epoch " << e + 1;
    EXPECT_EQ(*from_memory.epochs[e].val_loss, *from_file.epochs[e].val_loss);
  }
  // It learns: the loss falls from epoch 1 to 3.
  EXPECT_LT(from_memory.epochs[2].loss, from_memory.epochs[0].loss);
}

// small_model's loss after 2 epochs on the same 128 samples.
double second_epoch_loss(const keras::Spec& optimizer, const keras::Spec& loss) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  const keras::FitOptions options{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = false};
  return small_model(optimizer, loss).fit(world_of_one(), arrays_of(data), options).epochs[1].loss;
}

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

// AdamW without decay is Adam bit for bit (its factor is 1); with decay it trains another model.
TEST(KerasApi, AdamWReachesTheTrainerWithItsDecay) {
  const keras::Spec loss{YAML::Node("sparse_categorical_crossentropy")};
  const double adam = second_epoch_loss(keras::Adam(0.01), loss);
  EXPECT_EQ(second_epoch_loss(keras::AdamW(0.01, 0.0), loss), adam);
  EXPECT_NE(second_epoch_loss(keras::AdamW(0.01, 0.5), loss), adam);
}

// A loss with settings: without smoothing it is the named loss bit for bit, with it another model.
TEST(KerasApi, CategoricalCrossentropyTakesLabelSmoothing) {
  const keras::Spec adam = keras::Adam(0.01);
  const double named = second_epoch_loss(adam, {YAML::Node("categorical_crossentropy")});
  EXPECT_EQ(second_epoch_loss(adam, keras::CategoricalCrossentropy()), named);
  EXPECT_NE(second_epoch_loss(adam, keras::CategoricalCrossentropy(0.2)), named);
}

TEST(KerasApi, MistakesAreConfigErrorsNamingTheKey) {
  const Dataset data = make_synthetic(64, 6, 4, 1);
  keras::Sequential uncompiled({keras::Dense(4, "softmax")}, {6});
  EXPECT_THROW(uncompiled.fit(world_of_one(), arrays_of(data)), ConfigError);

  keras::Arrays short_features = arrays_of(data);
  short_features.features.pop_back();
  try {
    small_model().fit(world_of_one(), short_features, {.verbose = false});
    FAIL() << "features of the wrong length were accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("training arrays"), std::string::npos) << e.what();
  }
  try {
    small_model().fit(world_of_one(), arrays_of(data), {.verbose = false, .set = {"data.x=1"}});
    FAIL() << "a data section was accepted with arrays";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data"), std::string::npos) << e.what();
  }
  keras::Sequential bad({keras::Dense(0, "relu"), keras::Dense(4, "softmax")}, {6});
  bad.compile(keras::Adam(), "sparse_categorical_crossentropy");
  try {
    bad.fit(world_of_one(), arrays_of(data), {.verbose = false});
    FAIL() << "a layer of 0 units was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.units"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddp
