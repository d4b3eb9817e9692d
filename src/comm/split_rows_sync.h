#pragma once
// Note [split weight gradients]: with training.zero: rows (what `zero: auto` picks where every rank
// is on one host, every parameter is a dense layer's over flat inputs, the optimizer may update
// rows as their gradients come, and the parameters, over 8 MB, come from memory each step), the
// ranks of a host do not sum gradients: they compute them together. Backward on each rank computes
// only the input gradients of its samples and hands each dense layer's input x and pre-activation
// gradient dy (its rows of the global batch) to a window of shared memory, about 1 MB a layer on
// W3. After a barrier, each rank computes a share of every layer's weight and bias rows over the
// whole global batch, from all ranks' x and dy, and the optimizer updates those rows block by block
// while they are in cache (Note [update in backward]), in the one copy of the parameters that every
// rank maps. A second barrier, and the next forward reads them.
// What that saves against ZeRO-1 on one host (Note [sharded step]): nothing writes a gradient
// buffer, sums it over ranks or copies parameters between ranks. Each parameter's gradient is
// computed once, over the global batch, and updated where it lies; per step the host streams the
// weights twice per rank (forward, input gradient) and the update's arrays once, where ZeRO-1 also
// wrote and read every rank's gradients and copied the parameters into every rank's copy (W3, 2
// ranks: ~760 MB a step against ~470). W3 at 2 ranks: 1.10x ZeRO-1's samples/s, 1.75x one rank's
// (benchmarks/results/xeon/split_rows.md). The sums over the batch are the one-rank sums at the
// global batch, so the ranks train one rank's bits (tested; where the tiled kernels take the
// products, whose sums do not depend on the rows asked for); the parameters are one copy, the same
// for every rank by construction. Each rank keeps optimizer state for the whole buffer but updates
// only its rows; checkpoints gather every rank's rows (gather_shards).
// The rows of a rank lacking samples in a partial last batch are zeros in the window, which add
// nothing to the sums. The weight gradients and their updates run in finish(); compute_seconds()
// tells the trainer, which counts them as backward's time (ddp_bench's phase_ms.backward), not
// communication's.

#include <memory>
#include <string>
#include <vector>

#include "backend/in_backward_update.h"
#include "comm/grad_sync.h"

namespace ddp {

class SplitRowsSync final : public GradSync, public WeightGradSplit {
 public:
  // `params`: one shared copy of `count` floats; `exchange`: one shared copy of
  // exchange_floats(layers, comm.size() * rows_per_rank); `layers` cover [0, count) exactly.
  SplitRowsSync(Communicator& comm, ComputeBackend& backend, std::unique_ptr<SharedBuffer> params,
                std::unique_ptr<SharedBuffer> exchange, std::vector<DenseShape> layers,
                int64_t rows_per_rank, std::string description);
  // Floats of shared memory for every layer's x and dy over `rows` rows.
  static size_t exchange_floats(const std::vector<DenseShape>& layers, int64_t rows);

  std::string describe() const override { return description_; }
  const std::vector<Bucket>& buckets() const override { return no_buckets_; }
  std::span<float> params() override { return params_->span(); }
  std::span<float> grads() override { return grads_.span(); }  // unused: nothing writes them
  bool gradients_final_in_backward() const override { return true; }
  WeightGradSplit* weight_grad_split() override { return this; }
  void ready(size_t) override {}
  // The weight gradients and their updates, between two barriers.
  void finish() override;
  bool agree_finite(bool shard_finite) override;  // ranks check different rows
  // Nothing reads the sums before the step here (options.sums_before_step is not chosen with it).
  double sum_over_shards(double) override;
  Shard shard() const override { return {0, grads_.size()}; }
  std::span<float> shard_grads() override { return grads(); }
  // Every parameter was updated in finish().
  bool step(const ShardUpdate&) override { return true; }
  void gather_shards(std::span<float> full) override;
  void params_written() override { params_->synchronize(); }
  double compute_seconds() const override { return compute_seconds_; }

  void hand_over(const DenseTensors& layer, const float* x, const float* dy, int64_t rows,
                 InBackwardUpdate& update) override;

 private:
  struct Layer {
    DenseShape shape;
    size_t x_offset;                     // in the exchange window: (ranks * rows_per_rank, in)
    size_t dy_offset;                    // (ranks * rows_per_rank, out)
    InBackwardUpdate* update = nullptr;  // this step's, once handed over
  };
  // Rows [first, end) of a layer's out that `rank` computes and updates.
  std::pair<int64_t, int64_t> rows_of(const DenseShape& shape, int rank) const;
  // Every stretch of the flat buffer that `rank` updates, in buffer order.
  std::vector<std::pair<size_t, size_t>> stretches_of(int rank) const;

  Communicator& comm_;
  ComputeBackend& backend_;
  std::unique_ptr<SharedBuffer> params_;
  std::unique_ptr<SharedBuffer> exchange_;
  std::vector<Layer> layers_;
  int64_t rows_per_rank_;
  std::string description_;
  DeviceBuffer grads_;
  std::vector<float> bias_rows_;
  std::vector<Bucket> no_buckets_;
  double compute_seconds_ = 0;
};

}  // namespace ddp
