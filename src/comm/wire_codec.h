#pragma once
// Note [wire format]: how gradients travel between ranks. fp32 sends them as computed. bf16
// (training.wire_dtype: bf16) halves the bytes: each bucket is rounded to bfloat16 on the
// backend, summed as bfloat16 (MPI user op, ncclBfloat16), and widened back. The gradients are
// already scaled to the global mean, so the sums cannot overflow. A path without a wire (shared
// memory) applies the same rounding to every summand as it reads it and to the sums it writes
// (Summands::kBf16), so that a run's numbers do not change with the path it happens to take.

#include <memory>
#include <span>
#include <string>

#include "backend/backend.h"
#include "comm/buckets.h"
#include "comm/communicator.h"

namespace ddp {

enum class WireDtype { kFp32, kBf16 };

class WireCodec {
 public:
  virtual ~WireCodec() = default;
  virtual std::string name() const = 0;  // "fp32", "bf16"
  // The sum over ranks of grads[b] through `comm`, in place.
  virtual void all_reduce(Communicator& comm, std::span<float> grads, const Bucket& b) = 0;
  // The same, started now; grads[b] holds the sum once the returned Work has been waited for.
  // Buckets in flight at the same time must not overlap.
  virtual std::unique_ptr<Work> start_all_reduce(Communicator& comm, std::span<float> grads,
                                                 const Bucket& b) = 0;
  // What a path that sums in shared memory adds up, to give the numbers this wire would.
  virtual Summands summands() const = 0;
};

// For a flat gradient buffer of grad_count floats in `backend`'s memory.
std::unique_ptr<WireCodec> make_wire_codec(WireDtype dtype, ComputeBackend& backend,
                                           size_t grad_count);

}  // namespace ddp
