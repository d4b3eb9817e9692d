#pragma once
// The CPU backend's buffers: zero-filled, 64-byte aligned (full AVX-512 vectors for Eigen and the
// update loops). Large ones (32 MB and more) are fresh pages that the kernel zero-fills as they
// are first touched, so such a buffer costs memory only where and once it is written: the weight
// gradients where the optimizer updates inside backward (Note [update in backward]) or the ranks
// split them (Note [split weight gradients]) are written only for biases, and the optimizer's
// state no longer shares the peak with the model's initial copy of the parameters (freed before
// the first step).
// W3's peak resident memory (ddp_bench): 1 rank 322 -> 212 MB, 2 ranks 337 -> 225 MB
// (benchmarks/results/xeon/host_buffers.md).

#include <cstddef>

namespace ddp {

// `count` zero floats; throws std::bad_alloc.
float* allocate_host_buffer(size_t count);
// A buffer from allocate_host_buffer.
void release_host_buffer(float* data);

}  // namespace ddp
