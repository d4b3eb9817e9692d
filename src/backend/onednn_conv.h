#pragma once
// Note [oneDNN convolutions]: where oneDNN (Debian's libdnnl-dev) is found at configure time, the
// CPU backend runs convolutions over inputs of at least kMinChannels channels with oneDNN's
// direct convolution, which measured 1.7x faster than im2col + GEMM on W4's 32 -> 64 layer
// (benchmarks/results/conv_onednn.md); single-channel and few-channel inputs, bound by memory,
// stay on im2col + GEMM, which was faster there. oneDNN runs on the calling thread only (one rank
// per core). Its primitives are built once per shape and batch size and cached. The weights stay
// in ddp-trainer's (filters, kh, kw, channels) order in the flat buffer; each pass reorders them
// into the layout oneDNN prefers (and the weight gradient back), a few hundred KB.

#include <cstdint>
#include <memory>

#include "backend/backend.h"

namespace ddp {

class OneDnnConvolutions {
 public:
  static constexpr int64_t kMinChannels = 8;
  OneDnnConvolutions();
  ~OneDnnConvolutions();

  // The ComputeBackend::conv2d_* contracts, for shapes with w.channels >= kMinChannels.
  void forward(const float* x, const float* weight, const float* bias, float* y, int64_t batch,
               const Window2d& w, int64_t filters, Activation act);
  // dz (batch, out_h, out_w, filters) holds dLoss/d(pre-activation) on entry.
  void backward(const float* x, const float* weight, const float* dz, float* dx, float* dweight,
                float* dbias, int64_t batch, const Window2d& w, int64_t filters, bool accumulate);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace ddp
