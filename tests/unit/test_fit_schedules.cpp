// The learning-rate schedule across the C++ API's fits: it counts the optimizer's steps, as
// Keras' schedules count optimizer.iterations, so a fit that goes on with the last fit's optimizer
// goes on with its schedule, and compile() (a new optimizer) starts it again.

#include <gtest/gtest.h>

#include <vector>

#include "api/keras.h"
#include "data/dataset.h"
#include "keras_api_fixtures.h"

namespace ddp {
namespace {

TEST(FitSchedules, ASecondFitGoesOnWithTheSchedule) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  keras::FitOptions options{.epochs = 4, .batch_size = 32, .verbose = false};
  // Every epoch the same batches (no shuffle), so the epochs' numbers do not matter.
  options.set = {"training.shuffle=false",
                 "optimizer.schedule={type: exponential, decay_steps: 3, decay_rate: 0.5}"};
  keras::Sequential straight = small_model();
  const keras::History whole = straight.fit(world_of_one(), arrays_of(data), options);
  keras::Sequential in_two = small_model();
  options.epochs = 2;
  in_two.fit(world_of_one(), arrays_of(data), options);
  const keras::History second = in_two.fit(world_of_one(), arrays_of(data), options);
  EXPECT_EQ(second.epochs[1].learning_rate, whole.epochs[3].learning_rate);
  EXPECT_LT(whole.epochs[3].learning_rate, whole.epochs[1].learning_rate);
  EXPECT_EQ(values_of(in_two.get_weights()), values_of(straight.get_weights()));
  // compile(): a new optimizer, whose schedule starts from its first step.
  in_two.compile(keras::Adam(0.01), "sparse_categorical_crossentropy", {"accuracy"});
  const keras::History recompiled = in_two.fit(world_of_one(), arrays_of(data), options);
  EXPECT_EQ(recompiled.epochs[0].learning_rate, whole.epochs[0].learning_rate);
}

}  // namespace
}  // namespace ddp
