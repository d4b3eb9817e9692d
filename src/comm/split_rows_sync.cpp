#include "comm/split_rows_sync.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "core/owned_lines.h"
#include "core/thread_team.h"

namespace ddp {
namespace {

// Each rank's share of a layer's rows is a whole number of every register tile's rows, so that
// its blocks are the blocks one rank would compute (Note [tiled GEMM]).
constexpr int64_t kRowGrain = 16;

std::string where(const DenseShape& shape) {
  return "the dense layer whose weight starts at float " + std::to_string(shape.weight_offset);
}

}  // namespace

size_t SplitRowsSync::exchange_floats(const std::vector<DenseShape>& layers, int64_t rows) {
  size_t floats = 0;
  for (const DenseShape& shape : layers)
    floats += static_cast<size_t>(rows) * static_cast<size_t>(shape.in + shape.out);
  return floats;
}

SplitRowsSync::SplitRowsSync(Communicator& comm, ComputeBackend& backend,
                             std::unique_ptr<SharedBuffer> params,
                             std::unique_ptr<SharedBuffer> exchange, std::vector<DenseShape> layers,
                             int64_t rows_per_rank, std::string description)
    : comm_(comm),
      backend_(backend),
      params_(std::move(params)),
      exchange_(std::move(exchange)),
      rows_per_rank_(rows_per_rank),
      description_(std::move(description)),
      grads_(backend, params_->span().size()) {
  const auto all_rows = static_cast<size_t>(comm_.size() * rows_per_rank_);
  size_t at = 0;
  int64_t widest = 0;
  for (const DenseShape& shape : layers) {
    const size_t x_offset = at;
    at += all_rows * static_cast<size_t>(shape.in);
    layers_.push_back({shape, x_offset, at});
    at += all_rows * static_cast<size_t>(shape.out);
    widest = std::max(widest, shape.out);
  }
  if (at != exchange_->span().size())
    throw std::logic_error("SplitRowsSync: an exchange window of " +
                           std::to_string(exchange_->span().size()) + " floats for " +
                           std::to_string(at));
  // The ranks' stretches must cover the buffer once: a parameter outside them would never change.
  std::vector<std::pair<size_t, size_t>> all;
  for (int r = 0; r < comm_.size(); ++r)
    for (const auto& stretch : stretches_of(r)) all.push_back(stretch);
  std::sort(all.begin(), all.end());
  size_t covered = 0;
  for (const auto& [begin, end] : all) {
    if (begin != covered) break;
    covered = end;
  }
  if (covered != params_->span().size())
    throw std::logic_error("SplitRowsSync: the dense layers cover " + std::to_string(covered) +
                           " of " + std::to_string(params_->span().size()) + " parameters");
  bias_rows_.resize(static_cast<size_t>(widest));
}

std::pair<int64_t, int64_t> SplitRowsSync::rows_of(const DenseShape& shape, int rank) const {
  return ThreadTeam::share(shape.out, kRowGrain, rank, comm_.size());
}

std::vector<std::pair<size_t, size_t>> SplitRowsSync::stretches_of(int rank) const {
  std::vector<std::pair<size_t, size_t>> stretches;
  for (const Layer& layer : layers_) {
    const DenseShape& s = layer.shape;
    const auto [first, end] = rows_of(s, rank);
    if (first == end) continue;
    const auto in = static_cast<size_t>(s.in);
    stretches.emplace_back(s.weight_offset + static_cast<size_t>(first) * in,
                           s.weight_offset + static_cast<size_t>(end) * in);
    if (s.bias_offset)
      stretches.emplace_back(*s.bias_offset + static_cast<size_t>(first),
                             *s.bias_offset + static_cast<size_t>(end));
  }
  std::sort(stretches.begin(), stretches.end());
  return stretches;
}

void SplitRowsSync::hand_over(const DenseTensors& tensors, const float* x, const float* dy,
                              int64_t rows, InBackwardUpdate& update) {
  const auto weight_offset = static_cast<size_t>(tensors.weight - params().data());
  const auto found = std::find_if(layers_.begin(), layers_.end(), [&](const Layer& layer) {
    return layer.shape.weight_offset == weight_offset;
  });
  const auto bias_at = [&](const DenseShape& shape) {
    return shape.bias_offset ? params().data() + *shape.bias_offset : nullptr;
  };
  if (found == layers_.end() || found->shape.in != tensors.in || found->shape.out != tensors.out ||
      tensors.bias.data() != bias_at(found->shape) ||
      tensors.bias.size() != (found->shape.bias_offset ? static_cast<size_t>(tensors.out) : 0))
    throw std::logic_error("SplitRowsSync: a dense layer it was not built for");
  if (rows < 0 || rows > rows_per_rank_)
    throw std::logic_error("SplitRowsSync: " + std::to_string(rows) + " rows from " +
                           where(found->shape) + ", at most " + std::to_string(rows_per_rank_));
  // This rank's rows of the global batch, and zeros for the rows it lacks.
  const auto put = [&](size_t offset, const float* from, int64_t width) {
    float* slot = exchange_->span().data() + offset +
                  static_cast<size_t>(comm_.rank() * rows_per_rank_ * width);
    const auto given = static_cast<size_t>(rows * width);
    if (given) copy_owning_ahead(slot, from, given);  // Note [owned lines]
    std::fill(slot + given, slot + static_cast<size_t>(rows_per_rank_ * width), 0.0f);
  };
  put(found->x_offset, x, tensors.in);
  put(found->dy_offset, dy, tensors.out);
  found->update = &update;
}

void SplitRowsSync::finish() {
  for (const Layer& layer : layers_)
    if (!layer.update)
      throw std::logic_error("SplitRowsSync: backward did not hand over " + where(layer.shape));
  // Every rank's x and dy are in the window, and no rank reads the weights for its input
  // gradients any more.
  exchange_->synchronize();
  const auto start = std::chrono::steady_clock::now();
  const float* window = exchange_->span().data();
  const int64_t batch = comm_.size() * rows_per_rank_;
  for (Layer& layer : layers_) {
    const DenseShape& s = layer.shape;
    const auto [first, end] = rows_of(s, comm_.rank());
    float* const weight = params().data() + s.weight_offset;
    InBackwardUpdate& update = *layer.update;
    const GradBlockConsumer update_rows = update.weight_consumer(weight, s.in, first, end);
    // Without a bias, its rows' sums go unused (Note [no bias]).
    backend_.dense_weight_grad_rows(window + layer.x_offset, window + layer.dy_offset, batch, s.in,
                                    s.out, first, end, bias_rows_.data(), update_rows);
    const auto bias_rows = static_cast<size_t>(end - first);
    if (bias_rows && s.bias_offset)
      update.update({params().data() + *s.bias_offset + first, bias_rows},
                    {bias_rows_.data(), bias_rows});
    layer.update = nullptr;
  }
  compute_seconds_ +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Every rank's rows are updated before any rank's next forward reads them, and read from the
  // window before any rank's next backward writes it.
  exchange_->synchronize();
}

bool SplitRowsSync::agree_finite(bool shard_finite) {
  return comm_.all_reduce_max(shard_finite ? 0 : 1) == 0;
}

double SplitRowsSync::sum_over_shards(double) {
  throw std::logic_error("SplitRowsSync::sum_over_shards: the gradients are never summed whole");
}

void SplitRowsSync::gather_shards(std::span<float> full) {
  // Each rank's stretches, packed in rank order, all-gathered, and put back where they belong.
  std::vector<std::vector<std::pair<size_t, size_t>>> stretches;
  std::vector<int> counts;
  for (int r = 0; r < comm_.size(); ++r) {
    stretches.push_back(stretches_of(r));
    size_t count = 0;
    for (const auto& [begin, end] : stretches.back()) count += end - begin;
    counts.push_back(static_cast<int>(count));
  }
  std::vector<float> packed(full.size());
  size_t at = 0;
  for (int r = 0; r < comm_.size(); ++r)
    for (const auto& [begin, end] : stretches[static_cast<size_t>(r)]) {
      if (r == comm_.rank()) std::copy(full.begin() + begin, full.begin() + end, &packed[at]);
      at += end - begin;
    }
  comm_.all_gather(packed, counts);
  at = 0;
  for (const auto& rank_stretches : stretches)
    for (const auto& [begin, end] : rank_stretches) {
      std::copy_n(&packed[at], end - begin, full.begin() + begin);
      at += end - begin;
    }
}

}  // namespace ddp
