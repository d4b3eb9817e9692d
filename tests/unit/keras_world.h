#pragma once
// The C++ API's runtime for unit tests: a world of one, started once for the whole test binary
// (MPI starts once per process), whichever test file asks first.

#include "api/keras.h"

namespace ddp {

inline keras::Runtime& world_of_one() {
  static int argc = 1;
  static char name[] = "unit_tests";
  static char* args[] = {name, nullptr};
  static char** argv = args;
  static keras::Runtime runtime(&argc, &argv);
  return runtime;
}

}  // namespace ddp
