#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "nn/sequential.h"

namespace ddp {

// Compares every parameter tensor bit for bit (CRC-32) against rank 0's and throws RuntimeError
// naming the step, the first differing tensor and how many ranks differ. Collective: every rank
// calls it at the same step and every rank throws the same error.
void check_replicas(Communicator& comm, ComputeBackend& backend, Sequential& model, int64_t step);

}  // namespace ddp
