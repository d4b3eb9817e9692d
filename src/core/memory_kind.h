#pragma once

namespace ddp {

// Where a buffer lives: what a compute backend allocates and what a communicator's float
// collectives reduce. The two must agree for gradients (asked of the types, never of their names).
enum class MemoryKind {
  kHost,    // CPU memory
  kDevice,  // GPU memory
};

}  // namespace ddp
