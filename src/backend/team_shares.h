#pragma once
// How the CPU backend's elementwise and row-wise work is shared out over a rank's threads (Note
// [threads per rank]): contiguous shares, each computed as on one thread, and small work left on
// the calling thread, where starting and joining the others costs about what they would save.

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/thread_team.h"

namespace ddp::cpu {

// Below this many elements, starting and joining the threads costs about what it saves.
inline constexpr size_t kSplitElements = size_t{1} << 16;
inline constexpr int64_t kCacheLineFloats = 16;

// work(begin, end) on the team's contiguous shares of [0, count), in multiples of `grain`.
template <typename Work>
void shares(ThreadTeam& team, int64_t count, int64_t grain, const Work& work) {
  team.run([&](int t) {
    const auto [begin, end] = ThreadTeam::share(count, grain, t, team.size());
    if (begin < end) work(begin, end);
  });
}

// work(begin, end) over [0, count) on the team's shares (whole cache lines), or on this thread.
template <typename Work>
void split_elements(ThreadTeam& team, size_t count, const Work& work) {
  if (team.size() == 1 || count < kSplitElements) return work(size_t{0}, count);
  shares(team, static_cast<int64_t>(count), kCacheLineFloats, [&](int64_t begin, int64_t end) {
    work(static_cast<size_t>(begin), static_cast<size_t>(end));
  });
}

// work(first, count) on the team's shares of `rows` rows of `row_size` floats, or on this thread.
template <typename Work>
void by_rows(ThreadTeam& team, int64_t rows, int64_t row_size, const Work& work) {
  if (team.size() == 1 || static_cast<size_t>(rows * row_size) < kSplitElements)
    return work(0, rows);
  shares(team, rows, 1, [&](int64_t begin, int64_t end) { work(begin, end - begin); });
}

// An element-by-element update loop(begin, end) -> non-finite flag over `count` elements, shared
// by the team's threads: with more than one rank (or the update after backward) a rank updates its
// whole or sharded buffer at once. Each element is computed as on one thread.
template <typename Loop>
uint32_t elementwise(ThreadTeam& team, size_t count, const Loop& loop) {
  std::atomic<uint32_t> non_finite{0};
  split_elements(team, count,
                 [&](size_t begin, size_t end) { non_finite.fetch_or(loop(begin, end)); });
  return non_finite.load();
}

}  // namespace ddp::cpu
