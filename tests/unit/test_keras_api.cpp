// The C++ API (Note [C++ API]) in a world of one: arrays in memory train exactly as the same
// samples read from a CSV file named by a data Spec, mistakes are the config's errors, and the
// trained model it keeps (Note [model state]) predicts, evaluates, hands out and takes weights,
// and trains on.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "api/keras.h"
#include "core/error.h"
#include "data/dataset.h"
#include "keras_api_fixtures.h"

namespace ddp {
namespace {

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

// Keras' one-hot targets (a 0/1 row per sample) are smoothed as class indices are: the same
// model, bit for bit (they were taken as given, unsmoothed).
TEST(KerasApi, LabelSmoothingSmoothsOneHotTargets) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  keras::Arrays one_hot = arrays_of(data);
  one_hot.labels.assign(data.labels.size() * 4, 0);
  for (size_t i = 0; i < data.labels.size(); ++i)
    one_hot.labels[i * 4 + static_cast<size_t>(data.labels[i])] = 1;
  const keras::FitOptions options{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = false};
  for (const double smoothing : {0.0, 0.2}) {
    const keras::Spec loss = keras::CategoricalCrossentropy(smoothing);
    const keras::History indices =
        small_model(keras::Adam(0.01), loss).fit(world_of_one(), arrays_of(data), options);
    const keras::History rows =
        small_model(keras::Adam(0.01), loss).fit(world_of_one(), one_hot, options);
    EXPECT_EQ(rows.epochs[1].loss, indices.epochs[1].loss) << "label_smoothing " << smoothing;
  }
}

// Keras' Reshape is free: flat samples reshaped into images train what the same samples given as
// images do, bit for bit; a target_shape of other size is refused naming the layer.
TEST(KerasApi, ReshapedSamplesTrainAsTheImagesTheyAre) {
  const Dataset data = make_synthetic(64, 48, 3, 9);
  const auto trained = [&](std::vector<keras::Spec> layers, std::vector<int64_t> sample_shape) {
    keras::Sequential model(std::move(layers), sample_shape);
    model.compile(keras::Adam(0.01), "sparse_categorical_crossentropy");
    model.fit(world_of_one(), keras::Arrays{sample_shape, data.features, data.labels},
              {.epochs = 2, .batch_size = 16, .seed = 3, .verbose = false});
    return values_of(model.get_weights());
  };
  const std::vector<float> images = trained(
      {keras::Conv2D(2, 3, "relu"), keras::Flatten(), keras::Dense(3, "softmax")}, {4, 4, 3});
  const std::vector<float> reshaped =
      trained({keras::Reshape({4, -1, 3}), keras::Conv2D(2, 3, "relu"), keras::Reshape({-1}),
               keras::Dense(3, "softmax")},
              {48});
  EXPECT_EQ(reshaped, images);
  keras::Sequential wrong({keras::Reshape({5, 5, 2}), keras::Flatten(), keras::Dense(3)}, {48});
  wrong.compile(keras::Adam(), "sparse_categorical_crossentropy");
  EXPECT_EQ(error_of<ConfigError>([&] { wrong.build(world_of_one()); }),
            "Sequential: model.layers.0: target_shape (5, 5, 2) does not hold the 48 values of its "
            "input (48)");
  keras::Sequential two_unknowns({keras::Reshape({-1, -1}), keras::Dense(3)}, {48});
  EXPECT_EQ(error_of<ConfigError>([&] { two_unknowns.build(world_of_one()); }),
            "Sequential: model.layers.0.target_shape: sizes > 0, with at most one -1 (what is "
            "left), got (-1, -1)");
}

// Keras' Rescaling in the model trains what the same samples rescaled beforehand do, bit for bit
// (a power of two: the products are exact either way); a scale that is not finite is refused.
TEST(KerasApi, RescalingIsTheSamplesRescaled) {
  const Dataset data = make_synthetic(64, 6, 4, 5);
  keras::Arrays halved = arrays_of(data);
  for (float& v : halved.features) v *= 0.5f;
  const keras::FitOptions options{.epochs = 2, .batch_size = 16, .seed = 3, .verbose = false};
  keras::Sequential rescaled(
      {keras::Rescaling(0.5), keras::Dense(16, "relu"), keras::Dense(4, "softmax")}, {6});
  rescaled.compile(keras::Adam(0.01), "sparse_categorical_crossentropy");
  rescaled.fit(world_of_one(), arrays_of(data), options);
  keras::Sequential plain = small_model();
  plain.fit(world_of_one(), halved, options);
  EXPECT_EQ(values_of(rescaled.get_weights()), values_of(plain.get_weights()));
  keras::Sequential wrong({keras::Rescaling(std::nan("")), keras::Dense(4)}, {6});
  EXPECT_EQ(error_of<ConfigError>([&] { wrong.build(world_of_one()); }),
            "Sequential: model.layers.0.scale: expected a finite number, got '.nan'");
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

// One softmax layer: its outputs are worked out here from the weights get_weights returns, in
// PyTorch's names and layout (weight (out, in), bias (out)).
TEST(KerasApi, PredictIsTheSoftmaxOfTheWeightsItReturns) {
  const Dataset data = make_synthetic(96, 6, 4, 11);
  keras::Sequential model({keras::Dense(4, "softmax")}, {6});
  model.compile(keras::Adam(0.05), "sparse_categorical_crossentropy");
  model.fit(world_of_one(), arrays_of(data),
            {.epochs = 2, .batch_size = 32, .seed = 5, .verbose = false});
  const std::vector<NamedTensor> weights = model.get_weights();
  ASSERT_EQ(weights.size(), 2u);
  EXPECT_EQ(weights[0].name, "layers.0.weight");
  EXPECT_EQ(weights[0].shape, (Shape{4, 6}));
  EXPECT_EQ(weights[1].name, "layers.0.bias");
  const std::vector<float> out = model.predict({{6}, data.features, {}});
  ASSERT_EQ(out.size(), 96u * 4);
  double worst = 0;
  for (int64_t i = 0; i < 96; ++i) {
    double z[4], sum = 0;
    for (int o = 0; o < 4; ++o) {
      z[o] = weights[1].values[o];
      for (int j = 0; j < 6; ++j) z[o] += weights[0].values[o * 6 + j] * data.features[i * 6 + j];
    }
    for (int o = 0; o < 4; ++o) sum += std::exp(z[o]);
    for (int o = 0; o < 4; ++o)
      worst = std::max(worst, std::abs(out[i * 4 + o] - std::exp(z[o]) / sum));
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_GT(std::abs(weights[1].values[0]), 0);  // trained, not the zero initial bias
}

// evaluate() on the validation arrays is what the last epoch reported for them.
TEST(KerasApi, EvaluateIsTheLastEpochsValidation) {
  const Dataset data = make_synthetic(128, 6, 4, 3), held_out = make_synthetic(40, 6, 4, 9);
  keras::Sequential model = small_model();
  const keras::History history =
      model.fit(world_of_one(), arrays_of(data),
                {.epochs = 2, .batch_size = 32, .seed = 5, .verbose = false}, arrays_of(held_out));
  const std::vector<MetricValue> result = model.evaluate(arrays_of(held_out));
  ASSERT_EQ(result.size(), 2u);
  EXPECT_EQ(result[0].name, "loss");
  EXPECT_EQ(result[0].value, *history.epochs.back().val_loss);
  EXPECT_EQ(result[1].name, "accuracy");
  EXPECT_EQ(result[1].value, history.epochs.back().val_metrics.at(0).value);
  // On the training data it is another value.
  EXPECT_NE(model.evaluate(arrays_of(data))[0].value, result[0].value);
}

// Several 0/1 labels per sample (binary_crossentropy): arrays of (samples x labels) labels train
// as the same synthetic multi-label data named by a Spec.
TEST(KerasApi, MultiLabelArraysTrainAsTheSameDataFromASpec) {
  const Dataset data = make_synthetic_multilabel(96, 6, 3, 4);
  const auto model = [] {
    keras::Sequential m({keras::Dense(8, "relu"), keras::Dense(3, "sigmoid")}, {6});
    m.compile(keras::Adam(0.01), "binary_crossentropy", {"binary_accuracy"});
    return m;
  };
  const keras::FitOptions options{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = false};
  const keras::History from_arrays =
      model().fit(world_of_one(), {{6}, data.features, data.labels}, options);
  const keras::History from_spec = model().fit(
      world_of_one(),
      keras::Spec{YAML::Load("{type: synthetic, samples: 96, features: 6, labels: 3, seed: 4}")},
      options);
  ASSERT_EQ(from_arrays.epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(from_arrays.epochs[e].loss, from_spec.epochs[e].loss);
    EXPECT_EQ(from_arrays.epochs[e].metrics.at(0).value, from_spec.epochs[e].metrics.at(0).value);
  }
}

// Keras' validation_split: the last samples before shuffling validate, the first
// floor(n (1 - split)) train: the same history as those two parts given apart.
TEST(KerasApi, ValidationSplitHoldsOutTheLastSamples) {
  const Dataset data = make_synthetic(201, 6, 4, 3);  // floor(201 x 0.75) = 150
  keras::FitOptions options{.epochs = 2, .batch_size = 32, .seed = 5, .verbose = false};
  const auto part = [&data](int64_t begin, int64_t end) {
    return keras::Arrays{{6},
                         {data.features.begin() + begin * 6, data.features.begin() + end * 6},
                         {data.labels.begin() + begin, data.labels.begin() + end}};
  };
  const keras::History apart =
      small_model().fit(world_of_one(), part(0, 150), options, part(150, 201));
  options.validation_split = 0.25;
  const keras::History split = small_model().fit(world_of_one(), arrays_of(data), options);
  ASSERT_EQ(split.epochs.size(), 2u);
  for (size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(split.epochs[e].loss, apart.epochs[e].loss);
    EXPECT_EQ(split.epochs[e].val_loss, apart.epochs[e].val_loss);
    EXPECT_EQ(split.epochs[e].val_metrics.at(0).value, apart.epochs[e].val_metrics.at(0).value);
  }
  options.validation_split = 1;
  EXPECT_THROW(small_model().fit(world_of_one(), arrays_of(data), options), ConfigError);
  options.validation_split = 0.999;  // floor(201 x 0.001) = 0 training samples
  try {
    small_model().fit(world_of_one(), arrays_of(data), options);
    FAIL() << "an empty training split was accepted";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(),
                 "Sequential: validation_split: 201 samples are too few to split 0.999000 of "
                 "them off for validation");
  }
  options.validation_split = 0.25;
  EXPECT_THROW(small_model().fit(world_of_one(), keras::synthetic(200, 6, 4), options),
               ConfigError);
}

// Keras' summary: before fit from the layers and input shape alone, after it the trained model's,
// the same table for the same architecture.
TEST(KerasApi, SummaryBeforeFitIsTheFittedModels) {
  keras::Sequential model = small_model();
  const std::string before = model.summary();
  EXPECT_NE(before.find("(None, 16)"), std::string::npos) << before;
  EXPECT_NE(before.find("Total params: 180 "), std::string::npos) << before;  // 6x16+16, 16x4+4
  model.fit(world_of_one(), arrays_of(make_synthetic(64, 6, 4, 1)), {.verbose = false});
  EXPECT_EQ(model.summary(), before);
  keras::Sequential shapeless({keras::Dense(4, "softmax")});
  EXPECT_THROW(shapeless.summary(), ConfigError);
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = a.size() == b.size() ? 0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// Note [model state]: a second fit trains on from the first's weights and optimizer state, so
// with the whole data in one batch (the same step whatever the order) two fits of one epoch are
// one fit of two; a compile() in between starts a fresh optimizer; set_weights before a fit
// replaces its initial weights.
TEST(KerasApi, FitTrainsOnFromTheLastFit) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  const keras::FitOptions one{.epochs = 1, .batch_size = 128, .seed = 5, .verbose = false};
  keras::FitOptions two = one;
  two.epochs = 2;
  for (const bool stateless : {true, false}) {
    const keras::Spec optimizer = stateless ? keras::SGD(0.1) : keras::Adam(0.01);
    keras::Sequential twice = small_model(optimizer);
    twice.fit(world_of_one(), arrays_of(data), one);
    const std::vector<NamedTensor> first = twice.get_weights();
    twice.fit(world_of_one(), arrays_of(data), one);
    keras::Sequential straight = small_model(optimizer);
    straight.fit(world_of_one(), arrays_of(data), two);
    EXPECT_LT(max_diff(values_of(twice.get_weights()), values_of(straight.get_weights())), 1e-6)
        << (stateless ? "SGD" : "Adam");
    // The second epoch from the first's weights with a fresh optimizer, twice over.
    keras::Sequential fresh = small_model(optimizer);
    fresh.set_weights(first);
    fresh.fit(world_of_one(), arrays_of(data), one);
    keras::Sequential recompiled = small_model(optimizer);
    recompiled.fit(world_of_one(), arrays_of(data), one);
    recompiled.compile(optimizer, "sparse_categorical_crossentropy", {"accuracy"});
    recompiled.fit(world_of_one(), arrays_of(data), one);
    EXPECT_EQ(values_of(recompiled.get_weights()), values_of(fresh.get_weights()));
    // SGD has no state; Adam's moments and step count change the second step.
    const float stateful =
        max_diff(values_of(fresh.get_weights()), values_of(straight.get_weights()));
    if (stateless)
      EXPECT_LT(stateful, 1e-6);
    else
      EXPECT_GT(stateful, 1e-3);
  }
}

// Keras' initial_epoch: two epochs, then a fit of epochs 3 and 4 from them, train what one fit
// of 4 epochs does, bit for bit (Adam's moments and steps carried, each epoch's data order and a
// step schedule's place); the History holds epochs 3 and 4. Out of [0, epochs]: an error.
TEST(KerasApi, InitialEpochGoesOnAsTheLongerFit) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  keras::FitOptions options{.epochs = 4, .batch_size = 32, .seed = 5, .verbose = false};
  options.set = {"optimizer.schedule.type=step", "optimizer.schedule.step_size=3"};
  keras::Sequential straight = small_model();
  straight.fit(world_of_one(), arrays_of(data), options);
  keras::Sequential in_two = small_model();
  keras::FitOptions first = options;
  first.epochs = 2;
  in_two.fit(world_of_one(), arrays_of(data), first);
  options.initial_epoch = 2;
  const keras::History rest = in_two.fit(world_of_one(), arrays_of(data), options);
  ASSERT_EQ(rest.epochs.size(), 2u);
  EXPECT_EQ(rest.epochs[0].epoch, 3);
  EXPECT_EQ(values_of(in_two.get_weights()), values_of(straight.get_weights()));
  keras::Sequential from_start = small_model();  // without initial_epoch, epochs 1 and 2 again
  from_start.fit(world_of_one(), arrays_of(data), first);
  options.initial_epoch = 0;
  first.epochs = 2;
  from_start.fit(world_of_one(), arrays_of(data), first);
  EXPECT_NE(values_of(from_start.get_weights()), values_of(straight.get_weights()));
  options.initial_epoch = 5;
  EXPECT_THROW(small_model().fit(world_of_one(), arrays_of(data), options), ConfigError);
}

// yaml-cpp's assignment rebinds every node that shares the assigned one: a second compile() must
// leave the first's Specs as they were (a later model compiled with them trains with them).
TEST(KerasApi, CompileLeavesTheCallersSpecsAlone) {
  const keras::Spec adam = keras::Adam(0.01);
  const keras::Spec smoothed = keras::CategoricalCrossentropy(0.1);
  keras::Sequential model = small_model(adam, smoothed);
  model.compile(keras::SGD(0.5), "mean_squared_error");
  EXPECT_EQ(adam.node["type"].as<std::string>(), "adam");
  EXPECT_EQ(adam.node["learning_rate"].as<double>(), 0.01);
  EXPECT_EQ(smoothed.node["type"].as<std::string>(), "categorical_crossentropy");
  EXPECT_EQ(small_model(adam).config({})["optimizer"]["type"].as<std::string>(), "adam");
}

TEST(KerasApi, SavedWeightsLoadIntoAnotherModel) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  const keras::FitOptions options{.epochs = 1, .batch_size = 32, .seed = 5, .verbose = false};
  keras::Sequential trained = small_model();
  trained.fit(world_of_one(), arrays_of(data), options);
  const std::string path = ::testing::TempDir() + "keras_api.safetensors";
  trained.save_weights(path);
  keras::Sequential other = small_model();
  other.fit(world_of_one(), arrays_of(data),
            {.epochs = 1, .batch_size = 32, .seed = 6, .verbose = false});
  EXPECT_NE(other.predict(arrays_of(data)), trained.predict(arrays_of(data)));
  other.load_weights(path);
  EXPECT_EQ(other.predict(arrays_of(data)), trained.predict(arrays_of(data)));
  std::filesystem::remove(path);
}

TEST(KerasApi, ModelStateMistakesNameTheCall) {
  const Dataset data = make_synthetic(64, 6, 4, 3);
  keras::Sequential model = small_model();
  EXPECT_EQ(error_of([&] { model.predict(arrays_of(data)); }),
            "Sequential: predict() before fit(): the model is built, and its weights made, by "
            "fit() (or by build(), given the input shape)");
  EXPECT_EQ(error_of([&] { model.get_weights(); }).find("Sequential: get_weights() before fit()"),
            0u);
  // Weights of the wrong shape: the fit that would load them says which.
  model.set_weights({{"layers.0.weight", Shape{16, 5}, std::vector<float>(80)}});
  const keras::FitOptions options{.epochs = 1, .batch_size = 32, .seed = 5, .verbose = false};
  EXPECT_EQ(error_of([&] { model.fit(world_of_one(), arrays_of(data), options); }),
            "Sequential: set_weights: layers.0.weight has shape (16, 5), the model expects (16, "
            "6)");
  keras::Sequential trained = small_model();
  trained.fit(world_of_one(), arrays_of(data), options);
  EXPECT_EQ(error_of([&] { trained.set_weights({}); }),
            "Sequential: set_weights: no tensor named layers.0.weight");
  EXPECT_EQ(error_of([&] {
              trained.predict({{5}, std::vector<float>(10), {}});
            }),
            "Sequential: predict arrays: samples of shape (5) (5 values), but the model takes (6) "
            "(6)");
  EXPECT_EQ(error_of([&] {
              trained.predict({{6}, std::vector<float>(7), {}});
            }),
            "Sequential: predict arrays: 7 features are not whole samples of 6");
  EXPECT_EQ(error_of([&] {
              trained.evaluate({{6}, std::vector<float>(6), {4}});
            }),
            "Sequential: evaluate arrays: label 4 of sample 0 is outside [0, 4) for a model with 4 "
            "outputs");
  EXPECT_NE(error_of([&] {
              trained.load_weights("/nonexistent/w.safetensors");
            }).find("/nonexistent/w.safetensors"),
            std::string::npos);
  // The failed calls changed nothing: the model still predicts.
  EXPECT_EQ(trained.predict(arrays_of(data)).size(), 64u * 4);
  // A model whose input comes from the data cannot train on from samples of another shape; the
  // last fit's model stays.
  keras::Sequential shaped_by_data({keras::Dense(4, "softmax")});
  shaped_by_data.compile(keras::SGD(0.1), "sparse_categorical_crossentropy");
  shaped_by_data.fit(world_of_one(), arrays_of(data), options);
  const Dataset narrower = make_synthetic(64, 5, 4, 3);
  EXPECT_EQ(
      error_of([&] {
        shaped_by_data.fit(world_of_one(), {{5}, narrower.features, narrower.labels}, options);
      }).find("Sequential: the last fit's model: "),
      0u);
  EXPECT_EQ(shaped_by_data.predict(arrays_of(data)).size(), 64u * 4);
}

}  // namespace
}  // namespace ddp
