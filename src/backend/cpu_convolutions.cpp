#include "backend/cpu_convolutions.h"

#include <algorithm>

#include "backend/activation_grad.h"
#include "backend/cpu_activations.h"
#include "backend/direct_conv.h"
#include "backend/winograd_conv.h"
#ifdef DDP_HAVE_DNNL
#include "backend/onednn_conv.h"
#endif

namespace ddp::cpu {

struct Convolutions::Lane {
  std::vector<float> scratch;  // the direct and Winograd kernels' weights and tiles
#ifdef DDP_HAVE_DNNL
  std::unique_ptr<OneDnnConvolutions> onednn;
#endif
};

Convolutions::Convolutions(ThreadTeam& team, bool bf16) : team_(team), bf16_(bf16) {
  for (int t = 0; t < team.size(); ++t) {
    auto lane = std::make_unique<Lane>();
#ifdef DDP_HAVE_DNNL
    lane->onednn = std::make_unique<OneDnnConvolutions>(bf16_);
#endif
    lanes_.push_back(std::move(lane));
  }
}

Convolutions::~Convolutions() = default;

std::string Convolutions::description() const {
#ifdef DDP_HAVE_DNNL
  return bf16_ ? "oneDNN convolutions (bf16 from 8 channels)" : "oneDNN convolutions";
#else
  return "";
#endif
}

Convolutions::Kernel Convolutions::forward_kernel(const Window2d& win, int64_t filters) const {
  if (win.dilated()) return Kernel::kNone;  // Note [dilated convolution]: im2col + GEMM
#ifdef DDP_HAVE_DNNL
  const bool onednn = win.channels >= OneDnnConvolutions::kMinChannels;
#else
  const bool onednn = false;
#endif
  if (winograd_conv_applies(win, filters) && !(bf16_ && onednn)) return Kernel::kWinograd;
  if (direct_conv_applies(win)) return Kernel::kDirect;
  return onednn ? Kernel::kOneDnn : Kernel::kNone;
}

Convolutions::Kernel Convolutions::backward_kernel(const Window2d& win, int64_t filters,
                                                   bool input_grad) const {
  const Kernel kernel = forward_kernel(win, filters);
  if (kernel != Kernel::kDirect || !input_grad) return kernel;
    // The direct kernels have no input gradient (a first layer needs none): oneDNN's, or im2col.
#ifdef DDP_HAVE_DNNL
  if (win.channels >= OneDnnConvolutions::kMinChannels) return Kernel::kOneDnn;
#endif
  return Kernel::kNone;
}

bool Convolutions::forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                           const Window2d& win, int64_t filters, Activation act) {
  const Kernel kernel = forward_kernel(win, filters);
  if (kernel == Kernel::kNone) return false;
  const int64_t in_size = win.height * win.width * win.channels,
                out_size = win.out_pixels() * filters;
  const bool relu = act == Activation::kRelu;
  team_.run_pieces(batch, kPieceSamples, [&](int t, int64_t first, int64_t samples) {
    Lane& lane = *lanes_[t];
    const float* piece_x = x + first * in_size;
    float* const piece_y = y + first * out_size;
    switch (kernel) {
      case Kernel::kWinograd:
        winograd_conv_forward(piece_x, w, b, piece_y, samples, win, filters, relu, lane.scratch);
        break;
      case Kernel::kDirect:
        direct_conv_forward(piece_x, w, b, piece_y, samples, win, filters, relu, lane.scratch);
        break;
      case Kernel::kOneDnn:
#ifdef DDP_HAVE_DNNL
        lane.onednn->forward(piece_x, w, b, piece_y, samples, win, filters, act);
#endif
        return;  // the activation is oneDNN's post-op
      case Kernel::kNone:
        return;
    }
    if (!relu && act != Activation::kLinear)  // ReLU is in the kernels
      fused_activation(act, piece_y, piece_y, static_cast<size_t>(samples * out_size));
  });
  return true;
}

bool Convolutions::backward(const float* x, const float* w, const float* y, float* dy, float* dx,
                            float* dw, float* db, int64_t batch, const Window2d& win,
                            int64_t filters, Activation act, bool accumulate) {
  const Kernel kernel = backward_kernel(win, filters, dx != nullptr);
  if (kernel == Kernel::kNone) return false;
  const int64_t in_size = win.height * win.width * win.channels,
                out_size = win.out_pixels() * filters, weights = filters * win.patch();
  const int64_t pieces = (batch + kPieceSamples - 1) / kPieceSamples;
  // One piece sums into dw and db as the kernels do; several into partial sums, one a piece.
  const bool partial = pieces > 1;
  if (partial) partials_.resize(static_cast<size_t>(pieces * (weights + filters)));
  team_.run_pieces(batch, kPieceSamples, [&](int t, int64_t first, int64_t samples) {
    Lane& lane = *lanes_[t];
    float* const piece_dw =
        partial ? partials_.data() + first / kPieceSamples * (weights + filters) : dw;
    float* const piece_db = partial ? piece_dw + weights : db;
    const bool add = accumulate && !partial;
    const float* piece_x = x + first * in_size;
    const float* piece_y = y + first * out_size;
    float* const piece_dy = dy + first * out_size;
    float* const piece_dx = dx ? dx + first * in_size : nullptr;
    if (kernel == Kernel::kDirect) {  // takes the activation's gradient itself
      direct_conv_weight_grad(piece_x, piece_y, piece_dy, act, piece_dw, piece_db, samples, win,
                              filters, add, lane.scratch);
      return;
    }
    activation_grad(act, piece_y, piece_dy, piece_dy, static_cast<size_t>(samples * out_size));
    if (kernel == Kernel::kWinograd) {
      winograd_conv_backward(piece_x, w, piece_dy, piece_dx, piece_dw, piece_db, samples, win,
                             filters, add, lane.scratch);
      return;
    }
#ifdef DDP_HAVE_DNNL
    lane.onednn->backward(piece_x, w, piece_dy, piece_dx, piece_dw, piece_db, samples, win, filters,
                          add);
#endif
  });
  if (!partial) return true;
  // In the pieces' order, whichever threads computed them.
  const auto sum_into = [&](float* into, int64_t offset, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      float sum = accumulate ? into[i] : 0.0f;
      for (int64_t p = 0; p < pieces; ++p) sum += partials_[p * (weights + filters) + offset + i];
      into[i] = sum;
    }
  };
  sum_into(dw, 0, weights);
  sum_into(db, weights, filters);
  return true;
}

}  // namespace ddp::cpu
