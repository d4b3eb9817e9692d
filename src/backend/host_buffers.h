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
// Makes [data, data + count) of host memory resident and writable at once (whole pages around
// it), ahead of a loop that reads each element before writing it: where that memory is fresh pages,
// each page would otherwise fault twice, once mapping the shared zero page for the read and again
// to copy it for the write, and the second fault flushes the page's TLB entry on every core that
// runs the process (W3's first step with 1 rank x 2 threads: 198 ms instead of 52, its SGD
// velocity's 14,000 pages each interrupting the other thread; 78 instead of 55 ms on one thread:
// benchmarks/results/xeon/first_step_state_pages.md).
// Memory already resident (heap buffers) is left as it is. A hint: where the kernel cannot
// (MADV_POPULATE_WRITE is Linux 5.14), the loop faults as before.
void prepare_host_memory_for_writing(float* data, size_t count);

}  // namespace ddp
