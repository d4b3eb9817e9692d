// The canonical small example in C++ (Note [C++ API]): the model, data and training of
// configs/seed_example.yaml, so both train the same weights.
//   mpirun -n 2 ./seed_example

#include <ddp_trainer/api/keras.h>

#include <cstdio>
#include <exception>

#include "core/error.h"

namespace keras = ddp::keras;

int main(int argc, char** argv) {
  keras::Runtime runtime(&argc, &argv);
  try {
    keras::Sequential model(
        {keras::Dense(64, "relu"), keras::Dense(64, "relu"), keras::Dense(10, "softmax")}, {10});
    model.compile(keras::Adam(0.001), "sparse_categorical_crossentropy", {"accuracy"});
    const keras::History history = model.fit(runtime, keras::synthetic(1000, 10, 10),
                                             {.epochs = 10, .batch_size = 32, .seed = 42});
    if (runtime.rank() == 0) {
      std::printf("history: loss");
      for (const ddp::EpochRecord& epoch : history.epochs) std::printf(" %.9g", epoch.loss);
      std::printf("\n");
    }
  } catch (const ddp::Error& e) {
    std::fprintf(stderr, "seed_example: error: %s\n", e.what());
    return static_cast<int>(e.code());
  }
  return 0;
}
