#pragma once
// Dense layers on the CPU: their GEMMs (cpu_gemm.h) split over the rank's threads (Note [threads
// per rank]).

#include <cstdint>
#include <string>

#include "backend/backend.h"
#include "backend/bf16_products.h"
#include "core/thread_team.h"

namespace ddp::cpu {

// Which kernels take which products, for the backend's name.
std::string gemm_description(bool bf16);

// What a rank's dense products run on: its threads (Note [threads per rank]), or where the
// operands are rounded to bfloat16, `bf16` (Note [bf16 products]; null: fp32).
struct DenseContext {
  ThreadTeam& team;
  Bf16Products* bf16 = nullptr;
};

// Bf16Products that widen operands for the fp32 kernels here where the CPU has no bf16 units.
std::unique_ptr<Bf16Products> make_bf16_products();

// ComputeBackend::dense_forward and dense_backward.
void dense_forward(const DenseContext& dense, const float* x, const float* w, const float* b,
                   float* y, int64_t batch, int64_t in, int64_t out, Activation act);
void dense_backward(const DenseContext& dense, const float* x, const float* w, const float* y,
                    float* dy, float* dx, float* dw, float* db, int64_t batch, int64_t in,
                    int64_t out, Activation act, bool accumulate,
                    const GradBlockConsumer* consume_dw);
// ComputeBackend::dense_input_grad and dense_weight_grad_rows (Note [split weight gradients]).
void dense_input_grad(const DenseContext& dense, const float* w, const float* y, float* dy,
                      float* dx, int64_t batch, int64_t in, int64_t out, Activation act);
void dense_weight_grad_rows(const DenseContext& dense, const float* x, const float* dy,
                            int64_t batch, int64_t in, int64_t out, int64_t first_row,
                            int64_t end_row, float* db, const GradBlockConsumer& consume);

}  // namespace ddp::cpu
