#include "train/update_in_backward.h"

#include <algorithm>
#include <stdexcept>

#include "backend/backend.h"

namespace ddp {

InBackwardUpdate* UpdateInBackward::begin_step(float lr) {
  lr_ = lr;
  if (!enabled_) return nullptr;
  optimizer_.begin_step();
  return this;
}

size_t UpdateInBackward::offset_of(std::span<const float> piece) const {
  if (piece.data() < params_.data() ||
      piece.data() + piece.size() > params_.data() + params_.size())
    throw std::logic_error("update in backward: a piece outside the parameter buffer");
  return static_cast<size_t>(piece.data() - params_.data());
}

void UpdateInBackward::record(size_t begin, size_t updated, bool finite,
                              std::chrono::steady_clock::duration took) {
  // Threads of the rank may hand over different rows at once (Note [threads per rank]).
  std::lock_guard<std::mutex> lock(mutex_);
  finite_ &= finite;
  update_time_ += took;
  if (updated == 0) return;
  // A layer hands its rows in order: extend the last range where this piece continues it.
  if (!updated_.empty() && updated_.back().second == begin) {
    updated_.back().second = begin + updated;
  } else {
    updated_.emplace_back(begin, begin + updated);
  }
}

void UpdateInBackward::update(std::span<float> params, std::span<const float> grads) {
  const size_t begin = offset_of(params);
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = timed_ ? Clock::now() : Clock::time_point{};
  const bool finite = optimizer_.update(begin, params, grads, lr_, GradCheck::kFinite);
  record(begin, params.size(), finite, timed_ ? Clock::now() - start : Clock::duration{});
}

void UpdateInBackward::update_block(float* weight, int64_t in, const GradBlock& block) {
  const auto rows = static_cast<size_t>(block.rows), cols = static_cast<size_t>(block.cols);
  const auto row_floats = static_cast<size_t>(in);
  float* const first_row = weight + block.first_row * in;
  if (block.whole_rows(in)) return update({first_row, rows * cols}, {block.data, rows * cols});
  if (rows == 0) return;
  const size_t begin = offset_of({first_row, rows * row_floats});  // checks all the rows once
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = timed_ ? Clock::now() : Clock::time_point{};
  bool finite = true;
  for (size_t r = 0; r < rows; ++r) {
    const size_t at = begin + r * row_floats + static_cast<size_t>(block.first_col);
    finite &= optimizer_.update(at, params_.subspan(at, cols), {block.data + r * cols, cols}, lr_,
                                GradCheck::kFinite);
  }
  // The rows count as updated with their last block (a row's blocks come in column order).
  record(begin, block.ends_rows(in) ? rows * row_floats : 0, finite,
         timed_ ? Clock::now() - start : Clock::duration{});
}

GradBlockConsumer UpdateInBackward::weight_consumer(float* weight, int64_t in, int64_t first_row,
                                                    int64_t end_row) {
  GradBlockConsumer consumer{
      .consume = [this, weight, in](const GradBlock& block) { update_block(weight, in, block); },
      .streams = streams_beside(weight)};
  const auto count = static_cast<size_t>((end_row - first_row) * in);
  const size_t rows_at = offset_of({weight + first_row * in, count});
  if (const auto momentum = optimizer_.momentum_only(rows_at, count)) {
    consumer.momentum_step = MomentumStep{.lr = lr_,
                                          .momentum = momentum->momentum,
                                          .weight = weight,
                                          .velocity = momentum->velocity - first_row * in};
    consumer.stepped = [this, weight, in](int64_t first, int64_t rows, bool finite) {
      // The step's time is the tiles': counted as the products'.
      record(offset_of({weight + first * in, static_cast<size_t>(rows * in)}),
             static_cast<size_t>(rows * in), finite, {});
    };
  }
  return consumer;
}

std::vector<const float*> UpdateInBackward::streams_beside(const float* params) {
  const auto at = params - params_.data();
  std::vector<const float*> streams{params};
  for (const StateTensor& state : optimizer_.state()) streams.push_back(state.data.data() + at);
  return streams;
}

double UpdateInBackward::take_update_seconds() {
  if (!timed_) return 0;  // every step asks: no lock where nothing was timed
  std::lock_guard<std::mutex> lock(mutex_);
  const double seconds = std::chrono::duration<double>(update_time_).count();
  update_time_ = {};
  return seconds;
}

bool UpdateInBackward::update_rest(size_t at, std::span<float> params, std::span<const float> grads,
                                   GradCheck check) {
  bool finite = true;
  const size_t end = at + params.size();
  size_t next = at;  // first element not yet updated or skipped
  const auto update_to = [&](size_t stop) {
    if (stop <= next) return;
    finite &= optimizer_.update(next, params.subspan(next - at, stop - next),
                                grads.subspan(next - at, stop - next), lr_, check);
  };
  for (const auto& [begin, stop] : updated_) {  // sorted, disjoint
    if (stop <= next || begin >= end) continue;
    update_to(begin);
    next = std::max(next, stop);
  }
  update_to(end);
  return finite;
}

bool UpdateInBackward::finish_step(GradSync& sync, GradCheck check, float grad_scale) {
  if (enabled_ && grad_scale != 1)
    throw std::logic_error("update in backward: a gradient scale after the updates");
  if (!enabled_) optimizer_.begin_step(grad_scale);
  std::sort(updated_.begin(), updated_.end());
  const bool rest_finite =
      sync.step([&](size_t at, std::span<float> params, std::span<const float> grads) {
        return update_rest(at, params, grads, check);
      });
  const bool finite = finite_ && rest_finite;
  updated_.clear();
  finite_ = true;
  return finite;
}

}  // namespace ddp
