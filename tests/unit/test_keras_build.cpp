// Keras' build() in the C++ API: the model and its weights before any fit, for predict and the
// weights calls; compile() before a fit or evaluate; evaluate with what compile() gave last.

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "api/keras.h"
#include "core/error.h"
#include "data/dataset.h"
#include "keras_api_fixtures.h"

namespace ddp {
namespace {

// A built model predicts with the weights a fit would start from, and a fit after the build
// trains what a fit alone does, bit for bit.
TEST(KerasBuild, BuildsTheWeightsAFitStartsFrom) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  const keras::FitOptions options{.epochs = 2, .batch_size = 32, .verbose = false};
  keras::Sequential built = small_model();
  EXPECT_FALSE(built.built());
  built.build(world_of_one());
  EXPECT_TRUE(built.built());
  EXPECT_EQ(built.input_shape(), (std::vector<int64_t>{6}));
  const std::vector<float> before = values_of(built.get_weights());
  const std::vector<float> predicted = built.predict(arrays_of(data));
  EXPECT_EQ(predicted.size(), 128u * 4);
  const keras::History after_build = built.fit(world_of_one(), arrays_of(data), options);
  keras::Sequential plain = small_model();
  const keras::History alone = plain.fit(world_of_one(), arrays_of(data), options);
  EXPECT_EQ(after_build.epochs[1].loss, alone.epochs[1].loss);
  EXPECT_EQ(values_of(built.get_weights()), values_of(plain.get_weights()));
  EXPECT_NE(values_of(built.get_weights()), before);
}

// Built uncompiled, as Keras builds models: predict works, evaluate and fit need compile();
// after compile() evaluate and fit use its loss and metrics.
TEST(KerasBuild, UncompiledModelsPredictAndNeedCompileToEvaluate) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  keras::Sequential model({keras::Dense(16, "relu"), keras::Dense(4, "softmax")}, {6});
  EXPECT_EQ(error_of([&] { model.fit(world_of_one(), arrays_of(data)); }),
            "Sequential: fit() before compile()");
  model.build(world_of_one());
  EXPECT_EQ(model.predict(arrays_of(data)).size(), 128u * 4);
  EXPECT_EQ(error_of([&] { model.evaluate(arrays_of(data)); }),
            "Sequential: evaluate() before compile()");
  model.compile(keras::Adam(0.01), "sparse_categorical_crossentropy", {"accuracy"});
  const std::vector<MetricValue> evaluated = model.evaluate(arrays_of(data));
  ASSERT_EQ(evaluated.size(), 2u);
  EXPECT_EQ(evaluated[1].name, "accuracy");
  model.fit(world_of_one(), arrays_of(data), {.epochs = 1, .verbose = false});
  model.compile(keras::Adam(0.01), "sparse_categorical_crossentropy", {});  // no metrics now
  EXPECT_EQ(model.evaluate(arrays_of(data)).size(), 1u);
  keras::Sequential shapeless({keras::Dense(4, "softmax")});
  EXPECT_TRUE(shapeless.input_shape().empty());
  EXPECT_THROW(shapeless.build(world_of_one()), ConfigError);
}

}  // namespace
}  // namespace ddp
