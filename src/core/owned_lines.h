#pragma once
// Note [owned lines]: a core that writes lines other cores have read finds them shared, and its
// stores must first take them over. The optimizers' updates write parameters that
// both cores of a host read in forward and in the input gradient (a team's threads, and the ranks
// of a host, which under split weight gradients keep one copy of them), and under perf their
// stores took most of the update's time; each rank's rows of the split weight gradients' exchange
// window are read by every rank the step before. Where that happens, writes go in chunks, and
// before each one the next chunk's lines are asked for for writing (`prefetchw`: -march=native
// where the CPU has it, at x86-64-v3 and -v4 too, CMakeLists.txt; a read prefetch otherwise). W3
// on a Xeon, 2 ranks: the update inside backward 3.8 -> 2.6 ms, 1.03x the samples/s, and the
// exchange's copies ~1.01x more; 1 rank x 2 threads 1.02x; 1 rank and W2 the same
// (benchmarks/results/xeon/owned_parameters.md). A prefetch per line inside the update's loop
// slowed 1 rank down (chunks do not); asking for the optimizers' own state too, private to its
// core, gained nothing.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace ddp {

constexpr size_t kOwnedChunk = 256;  // floats: 16 lines asked for at a time

// Calls chunk(begin, end) over [0, count) in chunks of kOwnedChunk, each after asking for the
// lines of written[end, end + kOwnedChunk) for writing; returns the OR of what the calls return.
// chunk should take what it reads by value: through references, the compiler could not tell
// them from what the loop writes, and the updates' loops did not vectorize.
template <typename Chunk>
uint32_t in_chunks_owning_ahead(float* written, size_t count, Chunk chunk) {
  constexpr size_t kLineFloats = 64 / sizeof(float);
  uint32_t result = 0;
  for (size_t begin = 0; begin < count; begin += kOwnedChunk) {
    const size_t end = std::min(count, begin + kOwnedChunk);
    for (size_t line = end; line < std::min(count, end + kOwnedChunk); line += kLineFloats)
      __builtin_prefetch(written + line, 1, 3);
    result |= chunk(begin, end);
  }
  return result;
}

// memcpy of n floats into lines other cores have read.
inline void copy_owning_ahead(float* dst, const float* src, size_t n) {
  in_chunks_owning_ahead(dst, n, [=](size_t begin, size_t end) {
    std::memcpy(dst + begin, src + begin, (end - begin) * sizeof(float));
    return 0u;
  });
}

}  // namespace ddp
