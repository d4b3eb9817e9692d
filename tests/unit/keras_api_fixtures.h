#pragma once
// What the C++ API's unit tests share: the runtime, a world of one started once for the whole
// test binary (MPI starts once per process) whichever test asks first, a small classifier, and
// the message of an error a call throws.

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "api/keras.h"
#include "core/error.h"
#include "data/dataset.h"

namespace ddp {

inline keras::Runtime& world_of_one() {
  static int argc = 1;
  static char name[] = "unit_tests";
  static char* args[] = {name, nullptr};
  static char** argv = args;
  static keras::Runtime runtime(&argc, &argv);
  return runtime;
}

// 6 features -> 16 relu -> 4 softmax, compiled with `optimizer` and `loss` and accuracy.
inline keras::Sequential small_model(const keras::Spec& optimizer = keras::Adam(0.01),
                                     const keras::Spec& loss = {
                                         YAML::Node("sparse_categorical_crossentropy")}) {
  keras::Sequential model({keras::Dense(16, "relu"), keras::Dense(4, "softmax")}, {6});
  model.compile(optimizer, loss, {"accuracy"});
  return model;
}

inline keras::Arrays arrays_of(const Dataset& data) { return {{6}, data.features, data.labels}; }

// All the values of get_weights(), one after another.
inline std::vector<float> values_of(const std::vector<NamedTensor>& weights) {
  std::vector<float> out;
  for (const NamedTensor& t : weights) out.insert(out.end(), t.values.begin(), t.values.end());
  return out;
}

// The message of the error of class E that `call` throws (a test failure if none).
template <class E = Error>
std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

}  // namespace ddp
