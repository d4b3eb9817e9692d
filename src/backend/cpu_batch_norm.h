#pragma once
// The CPU backend's batch normalization ops (see ComputeBackend for their contracts): rows outer,
// channels inner and contiguous, so the compiler vectorizes along the channels.

#include <cstdint>
#include <vector>

#include "core/thread_team.h"

namespace ddp::cpu {

void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                  int64_t rows, int64_t channels);
// channel_sums on `team`, in pieces of rows whose bounds depend only on `rows`, one partial sum a
// piece (in `partial_sums`), added in the pieces' order: the same bits on any team (Note [threads
// per rank]).
void channel_sums_on(ThreadTeam& team, std::vector<double>& partial_sums, const float* a,
                     const float* b, const float* shift, double* host_sums, int64_t rows,
                     int64_t channels);
void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                        int64_t channels);
void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                         int64_t rows, int64_t channels);

}  // namespace ddp::cpu
