#pragma once
// Note [gradient synchronization]: one object, chosen once from the config, owns everything about
// how gradients become the same on every rank, shaped like PyTorch DDP's reducer with a comm
// hook. Per optimizer step the trainer
//   1. runs backward into grads() and reports ready(offset) as each layer's gradients are final
//      (last micro-batch only),
//   2. calls finish(); shard_grads() then holds the sum over ranks of this rank's shard (or only
//      after step(), which may make the sums as it goes: see shard_grads()),
//   3. checks shard_grads() for NaN and infinity and asks agree_finite() for the verdict of all
//      ranks, and if all are finite
//   4. calls step(), which runs the optimizer over shard() of params() with shard_grads() and
//      leaves all of params() the same on every rank.
//   (Steps 3 and 4 may come in the other order, the check riding on the step's pass: Note
//   [non-finite check] in train/trainer.cpp.)
// The parameter buffer lives here too, since how the ranks share it decides where it must live.
// Replicated (ReplicatedSync): the shard is the whole buffer, buckets are all-reduced, after
// backward or overlapped with it. ZeRO-1 (Zero1Sync): each rank owns a slice; gradients are
// reduce-scattered and the updated parameters all-gathered (Note [sharded step]); `zero: auto`
// picks it where it is the faster of the two. Either one sums through an
// AllReducePath (Note [all-reduce paths]) and, on a wire, a WireCodec (Note [wire format]).
// Split by rows (SplitRowsSync, Note [split weight gradients]): on one host, the ranks compute each
// dense layer's weight gradient together over the global batch instead of summing their own, and
// update one shared copy of the parameters; `zero: auto` picks it first where it applies.

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/in_backward_update.h"
#include "comm/buckets.h"
#include "comm/communicator.h"

namespace ddp {

enum class AllReduceChoice { kAuto, kSharedMemory, kMpi, kHierarchical, kNccl };
// training.zero: 0 (replicated optimizer), 1 (ZeRO-1), rows (Note [split weight gradients]), auto
// (rows where that can run, else ZeRO-1 where every rank is on one host and the gradients go
// through shared memory as fp32 after backward: Note [sharded step]).
enum class ZeroChoice { kOff, kOn, kRows, kAuto };

// A dense layer's weight (out, in) and bias (out; none: Note [no bias]) in the flat parameter
// buffer.
struct DenseShape {
  size_t weight_offset = 0;
  std::optional<size_t> bias_offset;
  int64_t in = 0;
  int64_t out = 0;
};

struct GradSyncOptions {
  std::string config_file;  // named in errors
  AllReduceChoice path = AllReduceChoice::kAuto;
  bool overlap = false;                 // start bucket reductions during backward
  bool bf16_wire = false;               // wire_dtype: bf16
  ZeroChoice zero = ZeroChoice::kAuto;  // shard the optimizer over ranks
  bool sums_before_step = false;        // shard_grads() is read between finish() and step()
  size_t bucket_bytes = size_t{4} << 20;
  RingChoice large_sums = RingChoice::kAuto;  // mpi_allreduce
  // Not from the config: what the trainer knows (Note [split weight gradients]). The model's dense
  // layers where every parameter is one's (else empty), whether the optimizer may update rows as
  // their gradients come (Note [update in backward]), and the most samples a rank has in a step.
  std::vector<DenseShape> dense_layers;
  bool update_as_gradients_come = false;
  int64_t rows_per_rank = 0;
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
  // The flat parameter and gradient buffers (backend memory) that the model trains and backward
  // writes; owned here, as long as this object lives.
  virtual std::span<float> params() = 0;
  virtual std::span<float> grads() = 0;
  // True when backward writes the step's final sums (one rank: nothing to reduce), so the optimizer
  // may update each tensor during backward (Note [update in backward]).
  virtual bool gradients_final_in_backward() const = 0;
  // Where dense layers hand their inputs over for weight gradients computed by all ranks together
  // (Note [split weight gradients]), or null.
  virtual WeightGradSplit* weight_grad_split() { return nullptr; }
  // During the last backward of a step: every gradient from `offset` to the end is final.
  virtual void ready(size_t offset) = 0;
  virtual void finish() = 0;
  // Whether the summed gradients of every rank's shard are finite, given this rank's verdict on
  // its own shard_grads(); every rank gets the same answer.
  virtual bool agree_finite(bool shard_finite) = 0;
  // The sum over the distinct shards of a value computed from this rank's shard (Note [gradient
  // clipping]'s squares): the same bits on every rank.
  virtual double sum_over_shards(double shard_value) = 0;
  virtual Shard shard() const = 0;
  // (shard().count): valid after finish() when options.sums_before_step, else after step() (which
  // may sum them piece by piece as it goes: Note [sharded step]).
  virtual std::span<float> shard_grads() = 0;
  // Updates `params` from `grads`, elements [state_offset, +size) of this rank's shard, and
  // returns the verdict of Optimizer::update.
  using ShardUpdate = std::function<bool(size_t state_offset, std::span<float> params,
                                         std::span<const float> grads)>;
  // After finish(): applies `update` to all of shard(), in pieces of its choosing, then makes
  // params() the same on every rank. False when an update returned false.
  virtual bool step(const ShardUpdate& update) = 0;
  // `full` (host, all floats) holds this rank's shard at shard().offset; fills in the others.
  virtual void gather_shards(std::span<float> full) = 0;
  // Collective, after every rank wrote params() when the trainer is built (bound, initialized):
  // where the ranks share one copy, no rank reads it or writes it again before all are done.
  // (Later writes outside a step, a checkpoint's or --init-from's values, are the same bits on
  // every rank.)
  virtual void params_written() {}
  // Seconds that finish() has spent computing the step's gradients rather than moving or waiting
  // for them, summed over the steps so far: the weight gradients of Note [split weight
  // gradients]. The trainer counts them as backward's, not communication's.
  virtual double compute_seconds() const { return 0; }
};

// Collective. tensor_offsets: where each parameter tensor starts in the flat buffer of `count`
// floats (bucket boundaries fall between tensors). Throws ConfigError naming
// options.config_file and training.allreduce when the chosen path cannot be had; every rank
// decides from the same agreed facts, so every rank throws alike.
std::unique_ptr<GradSync> make_grad_sync(const GradSyncOptions& options, Communicator& comm,
                                         ComputeBackend& backend,
                                         std::span<const size_t> tensor_offsets, size_t count);

}  // namespace ddp
