#pragma once
// Note [gradient synchronization]: one object, chosen once from the config, owns everything about
// how gradients become the same on every rank, shaped like PyTorch DDP's reducer with a comm
// hook. Per optimizer step the trainer
//   1. runs backward into grads() and reports ready(offset) as each layer's gradients are final
//      (last micro-batch only),
//   2. calls finish(), after which shard_grads() holds the sum over ranks of this rank's shard,
//   3. checks shard_grads() for NaN and infinity and asks agree_finite() for the verdict of all
//      ranks, and if all are finite
//   4. steps the optimizer over shard() of the parameters with shard_grads(), then after_step().
//   (Steps 3 and 4 may come in the other order, the check riding on the step's pass: Note
//   [non-finite check] in train/trainer.cpp.)
// Replicated (ReplicatedSync): the shard is the whole buffer, buckets are all-reduced, after
// backward or overlapped with it. ZeRO-1 (Zero1Sync): each rank owns a slice; gradients are
// reduce-scattered and the updated parameters all-gathered. Either one sums through an
// AllReducePath (Note [all-reduce paths]) and, on a wire, a WireCodec (Note [wire format]).

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "comm/buckets.h"
#include "comm/communicator.h"

namespace ddp {

enum class AllReduceChoice { kAuto, kSharedMemory, kMpi, kHierarchical, kNccl };

struct GradSyncOptions {
  std::string config_file;  // named in errors
  AllReduceChoice path = AllReduceChoice::kAuto;
  bool overlap = false;    // start bucket reductions during backward
  bool bf16_wire = false;  // wire_dtype: bf16
  bool zero1 = false;      // shard the optimizer over ranks
  size_t bucket_bytes = size_t{4} << 20;
};

// A slice of the flat parameter (and optimizer state) buffers, in floats.
struct Shard {
  size_t offset = 0;
  size_t count = 0;
};

class GradSync {
 public:
  virtual ~GradSync() = default;
  // One line for the log: strategy, wire format, path and why that path.
  virtual std::string describe() const = 0;
  virtual const std::vector<Bucket>& buckets() const = 0;
  // The flat gradient buffer (backend memory) that backward writes; owned here, as long as this
  // object lives.
  virtual std::span<float> grads() = 0;
  // During the last backward of a step: every gradient from `offset` to the end is final.
  virtual void ready(size_t offset) = 0;
  virtual void finish() = 0;
  // Whether the summed gradients of every rank's shard are finite, given this rank's verdict on
  // its own shard_grads(); every rank gets the same answer.
  virtual bool agree_finite(bool shard_finite) = 0;
  virtual Shard shard() const = 0;
  virtual std::span<float> shard_grads() = 0;  // (shard().count), valid after finish()
  // After the optimizer updated shard() of `params`: every rank holds all of `params`.
  virtual void after_step(std::span<float> params) = 0;
  // `full` (host, all floats) holds this rank's shard at shard().offset; fills in the others.
  virtual void gather_shards(std::span<float> full) = 0;
};

// Collective. tensor_offsets: where each parameter tensor starts in the flat buffer of `count`
// floats (bucket boundaries fall between tensors). Throws ConfigError naming
// options.config_file and training.allreduce when the chosen path cannot be had; every rank
// decides from the same agreed facts, so every rank throws alike.
std::unique_ptr<GradSync> make_grad_sync(const GradSyncOptions& options, Communicator& comm,
                                         ComputeBackend& backend,
                                         std::span<const size_t> tensor_offsets, size_t count);

}  // namespace ddp
