// Note [model state] under mpirun: two fits in a row (the second trains on from the first's
// weights and optimizer state, sharded by ZeRO-1 on one host), then the weights saved, evaluated
// and predicted. run_consumer_scenario.py runs it on 1 and 2 ranks and compares.
//   mpirun -n 2 ./model_state weights.safetensors

#include <ddp_trainer/api/keras.h>

#include <cstdio>
#include <exception>
#include <vector>

#include "core/error.h"

namespace keras = ddp::keras;

int main(int argc, char** argv) {
  keras::Runtime runtime(&argc, &argv);
  if (argc != 2) {
    std::fprintf(stderr, "usage: model_state <weights.safetensors>\n");
    return 2;
  }
  try {
    keras::Sequential model({keras::Dense(32, "relu"), keras::Dense(10, "softmax")}, {10});
    model.compile(keras::Adam(0.001), "sparse_categorical_crossentropy", {"accuracy"});
    const keras::FitOptions options{.epochs = 3, .batch_size = 32, .seed = 42, .verbose = false};
    model.fit(runtime, keras::synthetic(1000, 10, 10), options);
    model.fit(runtime, keras::synthetic(1000, 10, 10), options);
    model.save_weights(argv[1]);
    // 8 probes: sample i has features (i + j) / 10 for j = 0..9 and label i.
    keras::Arrays probes{{10}, {}, {}};
    for (int i = 0; i < 8; ++i) {
      for (int j = 0; j < 10; ++j) probes.features.push_back(static_cast<float>(i + j) / 10);
      probes.labels.push_back(i);
    }
    const std::vector<ddp::MetricValue> evaluation = model.evaluate(probes);
    const std::vector<float> outputs = model.predict(probes);
    std::printf("rank %d predict:", runtime.rank());
    for (const float v : outputs) std::printf(" %.9g", v);
    std::printf("\n");
    if (runtime.rank() == 0)
      std::printf("evaluate: %s %.9g %s %.9g\n", evaluation[0].name.c_str(), evaluation[0].value,
                  evaluation[1].name.c_str(), evaluation[1].value);
  } catch (const ddp::Error& e) {
    std::fprintf(stderr, "model_state: error: %s\n", e.what());
    return static_cast<int>(e.code());
  }
  return 0;
}
