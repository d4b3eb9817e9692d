#pragma once
// Note [convolutions on threads]: a rank's threads (Note [threads per rank]) share a
// convolution's samples in pieces whose size depends only on the batch (kPieceSamples, fewer in
// the last piece), each piece one call of the kernels on one thread, with its own scratch and
// oneDNN primitives: forward and the input gradient sample by sample; the weight and bias
// gradients as one partial sum per piece, added in the pieces' order after all are done. A
// piece's call is the same whichever thread makes it, so the bits do not depend on the team's
// size (tested), as the dense layers' do not. A batch of one piece is one call, as before the
// pieces.
//
// Which kernels (Note [Winograd convolution], Note [direct convolution], Note [oneDNN
// convolutions]): 3x3 at stride 1 over whole vectors of channels and filters: Winograd; few input
// channels: the direct kernels; many: oneDNN; otherwise, and for a direct convolution's input
// gradient, the caller runs im2col + GEMM. With bf16 products oneDNN's bf16 convolution takes
// those of 8 or more channels, Winograd's shapes included (Note [bf16 products]); few-channel ones
// stay fp32.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/window2d.h"
#include "core/thread_team.h"

namespace ddp::cpu {

class Convolutions {
 public:
  // Samples a piece: W4's 64 a rank in 4 pieces (measured in
  // benchmarks/results/xeon/convolutions_on_threads.md).
  static constexpr int64_t kPieceSamples = 16;

  // bf16: oneDNN's bf16 convolutions (only where native_bf16_products()).
  Convolutions(ThreadTeam& team, bool bf16);
  ~Convolutions();
  Convolutions(const Convolutions&) = delete;
  Convolutions& operator=(const Convolutions&) = delete;

  // What takes the convolutions, for the backend's name (empty without oneDNN).
  std::string description() const;
  // ComputeBackend::conv2d_forward and conv2d_backward: false where the caller runs im2col + GEMM.
  bool forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
               const Window2d& win, int64_t filters, Activation act);
  bool backward(const float* x, const float* w, const float* y, float* dy, float* dx, float* dw,
                float* db, int64_t batch, const Window2d& win, int64_t filters, Activation act,
                bool accumulate);

 private:
  enum class Kernel { kWinograd, kDirect, kOneDnn, kNone };
  Kernel forward_kernel(const Window2d& win, int64_t filters) const;
  Kernel backward_kernel(const Window2d& win, int64_t filters, bool input_grad) const;
  struct Lane;  // one thread's scratch and oneDNN primitives

  ThreadTeam& team_;
  bool bf16_;
  std::vector<std::unique_ptr<Lane>> lanes_;
  std::vector<float> partials_;  // each piece's weight and bias gradients
};

}  // namespace ddp::cpu
