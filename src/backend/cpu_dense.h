#pragma once
// Dense layers on the CPU: their GEMMs go to the register-tiled kernels of tiled_gemm.h (small and
// skinny products, Note [tiled GEMM]), OpenBLAS (the rest) or Eigen (without either), split over
// the rank's threads (Note [threads per rank]).

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "core/thread_team.h"

namespace ddp::cpu {

// Which kernels take which products, for the backend's name.
std::string gemm_description();

// ComputeBackend::dense_forward and dense_backward, on `team`.
void dense_forward(ThreadTeam& team, const float* x, const float* w, const float* b, float* y,
                   int64_t batch, int64_t in, int64_t out, Activation act);
void dense_backward(ThreadTeam& team, const float* x, const float* w, const float* y, float* dy,
                    float* dx, float* dw, float* db, int64_t batch, int64_t in, int64_t out,
                    Activation act, bool accumulate, const GradBlockConsumer* consume_dw);
// ComputeBackend::dense_input_grad and dense_weight_grad_rows (Note [split weight gradients]).
void dense_input_grad(ThreadTeam& team, const float* w, const float* y, float* dy, float* dx,
                      int64_t batch, int64_t in, int64_t out, Activation act);
void dense_weight_grad_rows(ThreadTeam& team, const float* x, const float* dy, int64_t batch,
                            int64_t in, int64_t out, int64_t first_row, int64_t end_row, float* db,
                            const GradBlockConsumer& consume);

}  // namespace ddp::cpu
