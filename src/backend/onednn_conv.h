#pragma once
// Note [oneDNN convolutions]: where oneDNN (Debian's libdnnl-dev) is found at configure time, the
// CPU backend runs convolutions over inputs of at least kMinChannels channels (other than those
// Note [Winograd convolution] takes: 3x3 at stride 1 over whole vectors) with oneDNN's
// direct convolution, which measured 1.7x faster than im2col + GEMM on W4's 32 -> 64 layer
// (benchmarks/results/conv_onednn.md); on single-channel and few-channel inputs it was slower
// than im2col + GEMM, and those take the direct kernels (Note [direct convolution]) or im2col +
// GEMM. The weight gradient is the exception: oneDNN's backward-weights kernel ran W4's second
// layer at ~38 GFLOP/s on an AMD EPYC (Zen 3, AVX2), where im2col + oneDNN's sgemm on the same
// product (K = the windows) ran at ~74, and the layer's training pass took 24.8 ms instead of
// 32.0 (medians of 8 alternated runs, bench_kernels); so it is im2col + dnnl_sgemm, a few samples
// at a time. oneDNN runs on the calling thread only (onednn_threads.h); a rank's threads each
// call their own instance on their pieces of the batch (Note [convolutions on threads]). Its
// primitives are built once per shape and batch size and cached. The weights stay in ddp-trainer's
// (filters, kh, kw, channels) order in the flat buffer; forward and the input gradient reorder them
// into the layout oneDNN prefers, a few hundred KB, and the weight gradient is computed in that
// order. With bf16 products (Note [bf16 products]) the input, weights and output gradient are
// converted to bf16 in the layouts the primitives choose, the outputs stay fp32, and the weight
// gradient is oneDNN's bf16 convolution too (on AMX, W4's 32 -> 64 layer's forward ran ~10x its
// fp32 rate).

#include <cstdint>
#include <memory>

#include "backend/backend.h"

namespace ddp {

class OneDnnConvolutions {
 public:
  static constexpr int64_t kMinChannels = 8;
  // Samples whose windows the weight gradient lays out at once (W4's second layer: 0.9 MB).
  static constexpr int64_t kWeightGradChunk = 4;
  // bf16: Note [bf16 products], only where the CPU has bf16 units.
  explicit OneDnnConvolutions(bool bf16 = false);
  bool bf16() const;
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
