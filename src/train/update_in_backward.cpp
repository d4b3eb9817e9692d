#include "train/update_in_backward.h"

#include <algorithm>
#include <stdexcept>

namespace ddp {

InBackwardUpdate* UpdateInBackward::begin_step(float lr) {
  lr_ = lr;
  if (!enabled_) return nullptr;
  optimizer_.begin_step();
  return this;
}

void UpdateInBackward::update(std::span<float> params, std::span<const float> grads) {
  if (params.data() < params_.data() ||
      params.data() + params.size() > params_.data() + params_.size())
    throw std::logic_error("update in backward: a piece outside the parameter buffer");
  const auto begin = static_cast<size_t>(params.data() - params_.data());
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = timed_ ? Clock::now() : Clock::time_point{};
  const bool finite = optimizer_.update(begin, params, grads, lr_, GradCheck::kFinite);
  const Clock::duration took = timed_ ? Clock::now() - start : Clock::duration{};
  // Threads of the rank may hand over different rows at once (Note [threads per rank]).
  std::lock_guard<std::mutex> lock(mutex_);
  finite_ &= finite;
  update_time_ += took;
  // A layer hands its rows in order: extend the last range where this piece continues it.
  if (!updated_.empty() && updated_.back().second == begin) {
    updated_.back().second = begin + params.size();
  } else {
    updated_.emplace_back(begin, begin + params.size());
  }
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

bool UpdateInBackward::finish_step(GradSync& sync, GradCheck check) {
  if (!enabled_) optimizer_.begin_step();
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
