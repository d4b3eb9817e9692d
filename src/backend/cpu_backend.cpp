// CPU backend: GEMMs through the register-tiled kernels of tiled_gemm.h (small and skinny
// products), OpenBLAS (the rest) or Eigen (without either); plain loops, which the compiler
// vectorizes, for everything else.

#include <immintrin.h>

#include <Eigen/Core>
#ifdef DDP_HAVE_CBLAS
#include <cblas.h>
#include <dlfcn.h>
#endif
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "backend/activation_grad.h"
#include "backend/backend.h"
#include "backend/column_sums.h"
#include "backend/cpu_batch_norm.h"
#include "backend/cpu_losses.h"
#include "backend/cpu_window_ops.h"
#include "backend/direct_conv.h"
#include "backend/winograd_conv.h"
#ifdef DDP_HAVE_DNNL
#include "backend/onednn_conv.h"
#endif
#include "backend/openblas_kernels.h"
#include "backend/tiled_gemm.h"
#include "core/bf16.h"
#include "core/error.h"
#include "core/stream_copy.h"

namespace ddp {
namespace {

// NaN and +-inf are the floats whose exponent bits are all ones. An integer OR-reduction of this
// vectorizes; a float one would not (its order is fixed without -ffast-math).
inline uint32_t is_non_finite(float x) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return static_cast<uint32_t>((bits & kExponent) == kExponent);
}

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMatrixMap = Eigen::Map<const RowMatrix, Eigen::Unaligned>;
using MutableMatrixMap = Eigen::Map<RowMatrix, Eigen::Unaligned>;

float activate(Activation act, float z) {
  switch (act) {
    case Activation::kRelu:
      return z > 0 ? z : 0;
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kSigmoid:
      return 1 / (1 + std::exp(-z));
    case Activation::kLinear:
      break;
  }
  return z;
}

#ifdef DDP_HAVE_CBLAS
// Chosen once, before the library is loaded (which is when it picks its kernels).
const std::string& openblas_kernels() {
  static const std::string chosen = choose_openblas_kernels();
  return chosen;
}

using SgemmFn = decltype(&cblas_sgemm);

SgemmFn openblas_sgemm() {
  static const SgemmFn sgemm = [] {
    openblas_kernels();
    void* library = dlopen(DDP_OPENBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
    void* symbol = library ? dlsym(library, "cblas_sgemm") : nullptr;
    if (!symbol)
      throw RuntimeError(std::string("cannot load cblas_sgemm from " DDP_OPENBLAS_PATH ": ") +
                         dlerror());
    return reinterpret_cast<SgemmFn>(symbol);
  }();
  return sgemm;
}
#endif

// DDP_GEMM=blas sends skinny products to BLAS as before the tiled kernels existed, for
// benchmarks/run_kernel_choice.py's comparison; anything else keeps the default.
bool skinny_to_blas() {
  static const bool forced = [] {
    const char* choice = std::getenv("DDP_GEMM");
    return choice && std::string(choice) == "blas";
  }();
  return forced;
}

// A weight gradient larger than this leaves L2 before anything reads it (backward's next layers
// run first), so it is written with non-temporal stores.
constexpr size_t kStreamedGradientBytes = size_t{4} << 20;

// Skinny products that the tiled kernels take (Note [tiled GEMM]), unless DDP_GEMM=blas.
bool skinny_and_tiled(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k) {
  return tiled_gemm_available() && !is_small_product(m, n, k) &&
         is_skinny_product(transpose_a, transpose_b, m, n, k) && !skinny_to_blas();
}

// C (m, n) = op(A) op(B), all row-major; op transposes when asked. A is (m, k) or (k, m), B is
// (k, n) or (n, k). See Note [tiled GEMM]: small products and skinny ones (a batch of rows against
// large weights) go to the register-tiled kernels, which neither pay BLAS's per-call overhead nor
// repack the weights on every call; the rest to single-threaded OpenBLAS; Eigen covers targets
// without AVX2 or BLAS.
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
          const float* b, float* c, bool accumulate = false) {
  const bool small = is_small_product(m, n, k);
  if ((small && tiled_gemm_available()) || skinny_and_tiled(transpose_a, transpose_b, m, n, k)) {
    tiled_gemm(transpose_a, transpose_b, m, n, k, a, b, c, accumulate);
    return;
  }
#ifdef DDP_HAVE_CBLAS
  if (!small) {
    openblas_sgemm()(
        CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
        transpose_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
        static_cast<int>(k), 1.0f, a, static_cast<int>(transpose_a ? m : k), b,
        static_cast<int>(transpose_b ? k : n), accumulate ? 1.0f : 0.0f, c, static_cast<int>(n));
    return;
  }
#endif
  MutableMatrixMap C(c, m, n);
  auto assign = [&C, accumulate](const auto& product) {
    if (accumulate) {
      C.noalias() += product;
    } else {
      C.noalias() = product;
    }
  };
  if (!transpose_a && !transpose_b) {
    assign(ConstMatrixMap(a, m, k) * ConstMatrixMap(b, k, n));
  } else if (!transpose_a) {
    assign(ConstMatrixMap(a, m, k) * ConstMatrixMap(b, n, k).transpose());
  } else {
    assign(ConstMatrixMap(a, k, m).transpose() * ConstMatrixMap(b, k, n));
  }
}

class CpuBackend final : public ComputeBackend {
 public:
  explicit CpuBackend(bool flush_denormals) : flush_denormals_(flush_denormals) {
    if (flush_denormals) _mm_setcsr(_mm_getcsr() | kFlushToZero | kDenormalsAreZero);
  }
  std::string name() const override {
#ifdef DDP_HAVE_CBLAS
    std::string gemm = "OpenBLAS kernels: " + openblas_kernels();
#else
    std::string gemm = "Eigen GEMM";
#endif
    if (tiled_gemm_available()) {
      const std::string tiled = std::string("tiled ") + tiled_gemm_isa() + " GEMM for ";
      gemm = (skinny_to_blas() ? tiled + "small products (DDP_GEMM=blas), "
                               : tiled + "small products and " + tiled_skinny_products() +
                                     " <= " + std::to_string(kSkinnyMaxBatch) + ", ") +
             gemm + " otherwise";
    }
#ifdef DDP_HAVE_DNNL
    gemm += ", oneDNN convolutions";
#endif
    return "cpu (" + gemm + (flush_denormals_ ? ", denormals flushed to zero)" : ")");
  }
  MemoryKind memory() const override { return MemoryKind::kHost; }

  float* allocate(size_t count) override {
    // 64-byte alignment: full AVX-512 vectors for Eigen and the update loops.
    const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, bytes);
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    return static_cast<float*>(p);
  }
  void release(float* data) override { std::free(data); }
  void copy_to_device(const float* host, float* device, size_t count) override {
    std::memcpy(device, host, count * sizeof(float));
  }
  void copy_to_host(const float* device, float* host, size_t count) override {
    std::memcpy(host, device, count * sizeof(float));
  }

  void dense_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                     int64_t in, int64_t out, Activation act) override {
    gemm(false, true, batch, out, in, x, w, y);  // (batch, in) x (out, in)^T
    // Bias and activation in one pass while the row is in cache.
    for (int64_t r = 0; r < batch; ++r) {
      float* row = y + r * out;
      if (act == Activation::kRelu) {
        for (int64_t c = 0; c < out; ++c) row[c] = std::max(row[c] + b[c], 0.0f);
      } else {
        for (int64_t c = 0; c < out; ++c) row[c] = activate(act, row[c] + b[c]);
      }
    }
  }

  void dense_backward(const float* x, const float* w, const float* y, float* dy, float* dx,
                      float* dw, float* db, int64_t batch, int64_t in, int64_t out, Activation act,
                      bool accumulate, const RowBlockConsumer* consume_dw) override {
    cpu::activation_grad(act, y, dy, dy, static_cast<size_t>(batch * out));
    if (!accumulate) std::fill(db, db + out, 0.0f);
    cpu::add_column_sums(dy, batch, out, db);
    // dx first: consume_dw may update w.
    if (dx) gemm(false, false, batch, in, out, dy, w, dx);  // (batch, out) x (out, in)
    // dw = (batch, out)^T x (batch, in). Each element is the same chain of multiply-adds over the
    // batch in every kernel here, so blocks and a stored dw hold the same bits.
    if (consume_dw && skinny_and_tiled(true, false, out, in, batch)) {
      tiled_weight_grad_blocks(out, in, batch, dy, x, *consume_dw);
      return;
    }
    // A large gradient, to be summed over ranks or stepped on after backward: computed in blocks
    // in cache and streamed out, so its lines are not read before being written (W3, 2 ranks:
    // backward ~1 ms faster).
    if (!consume_dw && !accumulate &&
        static_cast<size_t>(out * in) * sizeof(float) > kStreamedGradientBytes &&
        skinny_and_tiled(true, false, out, in, batch)) {
      tiled_weight_grad_blocks(
          out, in, batch, dy, x, [dw, in](int64_t first_row, int64_t rows, const float* block) {
            stream_copy(dw + first_row * in, block, static_cast<size_t>(rows * in));
          });
      _mm_sfence();
      return;
    }
    gemm(true, false, out, in, batch, dy, x, dw, accumulate);
    if (consume_dw) (*consume_dw)(0, out, dw);
  }

  bool prefers_update_in_backward() const override { return true; }

  void activation_forward(Activation act, const float* x, float* y, size_t count) override {
    // ReLU in a loop of its own, which vectorizes (with the switch inside, the loop did not, and
    // a separate ReLU after W4's first convolution took 5 ms instead of 0.5).
    if (act == Activation::kRelu) {
      for (size_t i = 0; i < count; ++i) y[i] = std::max(x[i], 0.0f);
      return;
    }
    for (size_t i = 0; i < count; ++i) y[i] = activate(act, x[i]);
  }
  void activation_backward(Activation act, const float* y, const float* dy, float* dx,
                           size_t count) override {
    cpu::activation_grad(act, y, dy, dx, count);
  }

  void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols) override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* in = x + r * cols;
      float* o = y + r * cols;
      const float max = *std::max_element(in, in + cols);
      float sum = 0;
      for (int64_t c = 0; c < cols; ++c) sum += (o[c] = std::exp(in[c] - max));
      const float inv = 1 / sum;
      for (int64_t c = 0; c < cols; ++c) o[c] *= inv;
    }
  }
  void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows,
                        int64_t cols) override {
    for (int64_t r = 0; r < rows; ++r) {
      const float* p = y + r * cols;
      const float* g = dy + r * cols;
      float dot = 0;
      for (int64_t c = 0; c < cols; ++c) dot += p[c] * g[c];
      float* o = dx + r * cols;
      for (int64_t c = 0; c < cols; ++c) o[c] = p[c] * (g[c] - dot);
    }
  }

  LossStats softmax_cross_entropy(const float* logits, const float* targets, TargetKind kind,
                                  float* dlogits, float grad_scale, int64_t rows,
                                  int64_t cols) override {
    return cpu::softmax_cross_entropy(logits, targets, kind, dlogits, grad_scale, rows, cols,
                                      scratch_);
  }

  LossStats sigmoid_cross_entropy(const float* logits, const float* targets,
                                  const float* pos_weight, float* dlogits, float grad_scale,
                                  int64_t rows, int64_t cols) override {
    return cpu::sigmoid_cross_entropy(logits, targets, pos_weight, dlogits, grad_scale, rows, cols);
  }
  double weight_penalty(const float* weights, float* grads, size_t count, float l1,
                        float l2) override {
    return cpu::weight_penalty(weights, grads, count, l1, l2);
  }
  LossStats mean_squared_error(const float* pred, const float* targets, float* dpred,
                               float grad_scale, int64_t rows, int64_t cols) override {
    return cpu::mean_squared_error(pred, targets, dpred, grad_scale, rows, cols);
  }

  // 3x3 at stride 1 over whole vectors of channels and filters: Winograd (Note [Winograd
  // convolution]); few input channels: the direct kernels (Note [direct convolution]); many:
  // oneDNN (Note [oneDNN convolutions]); otherwise, and for a direct convolution's input gradient,
  // the caller runs im2col + GEMM.
  bool conv2d_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                      const Window2d& win, int64_t filters, Activation act) override {
    const bool winograd = cpu::winograd_conv_applies(win, filters);
    if (winograd || cpu::direct_conv_applies(win)) {
      const bool relu = act == Activation::kRelu;
      if (winograd) {
        cpu::winograd_conv_forward(x, w, b, y, batch, win, filters, relu, conv_scratch_);
      } else {
        cpu::direct_conv_forward(x, w, b, y, batch, win, filters, relu, conv_scratch_);
      }
      if (!relu && act != Activation::kLinear)
        activation_forward(act, y, y, static_cast<size_t>(batch * win.out_pixels() * filters));
      return true;
    }
#ifdef DDP_HAVE_DNNL
    if (win.channels >= OneDnnConvolutions::kMinChannels) {
      convolutions_.forward(x, w, b, y, batch, win, filters, act);
      return true;
    }
#endif
    return false;
  }
  bool conv2d_backward(const float* x, const float* w, const float* y, float* dy, float* dx,
                       float* dw, float* db, int64_t batch, const Window2d& win, int64_t filters,
                       Activation act, bool accumulate) override {
    const bool winograd = cpu::winograd_conv_applies(win, filters);
    const bool direct = !dx && cpu::direct_conv_applies(win);
#ifdef DDP_HAVE_DNNL
    const bool onednn = win.channels >= OneDnnConvolutions::kMinChannels;
#else
    const bool onednn = false;
#endif
    if (!winograd && !direct && !onednn) return false;
    if (direct) {
      cpu::direct_conv_weight_grad(x, y, dy, act, dw, db, batch, win, filters, accumulate,
                                   conv_scratch_);
      return true;
    }
    cpu::activation_grad(act, y, dy, dy, static_cast<size_t>(batch * win.out_pixels() * filters));
    if (winograd) {
      cpu::winograd_conv_backward(x, w, dy, dx, dw, db, batch, win, filters, accumulate,
                                  conv_scratch_);
      return true;
    }
#ifdef DDP_HAVE_DNNL
    convolutions_.backward(x, w, dy, dx, dw, db, batch, win, filters, accumulate);
#endif
    return true;
  }

  void im2col(const float* x, float* cols, int64_t batch, const Window2d& w) override {
    cpu::im2col(x, cols, batch, w);
  }
  void col2im(const float* cols, float* dx, int64_t batch, const Window2d& w) override {
    cpu::col2im(cols, dx, batch, w);
  }
  void max_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w) override {
    cpu::max_pool_forward(x, y, batch, w);
  }
  void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                         const Window2d& w) override {
    cpu::max_pool_backward(x, y, dy, dx, batch, w);
  }
  void avg_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w) override {
    cpu::avg_pool_forward(x, y, batch, w);
  }
  void avg_pool_backward(const float* dy, float* dx, int64_t batch, const Window2d& w) override {
    cpu::avg_pool_backward(dy, dx, batch, w);
  }
  void dropout(const float* in, float* out, int64_t rows, int64_t row_size, float rate,
               uint64_t key, int64_t first_row) override {
    cpu::dropout(in, out, rows, row_size, rate, key, first_row);
  }

  void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                    int64_t rows, int64_t channels) override {
    cpu::channel_sums(a, b, shift, host_sums, rows, channels);
  }
  void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                          int64_t channels) override {
    cpu::batch_norm_forward(x, y, coeffs, rows, channels);
  }
  void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                           int64_t rows, int64_t channels) override {
    cpu::batch_norm_backward(dy, x, dx, coeffs, rows, channels);
  }

  bool all_finite(const float* data, size_t count) override {
    uint32_t non_finite = 0;
    for (size_t i = 0; i < count; ++i) non_finite |= is_non_finite(data[i]);
    return non_finite == 0;
  }

  void to_bf16(const float* src, uint16_t* dst, size_t count) override {
    for (size_t i = 0; i < count; ++i) dst[i] = ddp::to_bf16(src[i]);
  }
  void from_bf16(const uint16_t* src, float* dst, size_t count) override {
    for (size_t i = 0; i < count; ++i) dst[i] = ddp::from_bf16(src[i]);
  }

  // The updates stream several buffers from memory; the finiteness check on the way costs
  // nothing measurable, where a pass of its own over W3's gradients took 6 ms of a 66 ms step.
  bool sgd_update(float* params, const float* grads, float* velocity, size_t count, float lr,
                  const SgdHyper& hyper, GradCheck check) override {
    const float mu = hyper.momentum;
    const float wd = hyper.weight_decay;
    uint32_t non_finite = 0;
    if (mu == 0) {
      for (size_t i = 0; i < count; ++i) {
        non_finite |= is_non_finite(grads[i]);
        params[i] -= lr * (grads[i] + wd * params[i]);
      }
    } else {
      for (size_t i = 0; i < count; ++i) {
        non_finite |= is_non_finite(grads[i]);
        const float g = grads[i] + wd * params[i];
        const float v = mu * velocity[i] + g;
        velocity[i] = v;
        params[i] -= lr * (hyper.nesterov ? g + mu * v : v);
      }
    }
    return check == GradCheck::kNone || non_finite == 0;
  }

  bool adam_update(float* params, const float* grads, float* m, float* v, size_t count, float lr,
                   int64_t step, const AdamHyper& hyper, GradCheck check) override {
    const float b1 = hyper.beta1;
    const float b2 = hyper.beta2;
    const double t = static_cast<double>(step);
    const float step_size = static_cast<float>(lr / (1 - std::pow(double(b1), t)));
    const float inv_sqrt_bc2 = static_cast<float>(1 / std::sqrt(1 - std::pow(double(b2), t)));
    const float eps = hyper.epsilon;
    const float wd = hyper.weight_decay;
    uint32_t non_finite = 0;
    for (size_t i = 0; i < count; ++i) {
      non_finite |= is_non_finite(grads[i]);
      const float g = grads[i] + wd * params[i];
      const float mi = b1 * m[i] + (1 - b1) * g;
      const float vi = b2 * v[i] + (1 - b2) * g * g;
      m[i] = mi;
      v[i] = vi;
      params[i] -= step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + eps);
    }
    return check == GradCheck::kNone || non_finite == 0;
  }

 private:
  static constexpr unsigned kFlushToZero = 0x8000;
  static constexpr unsigned kDenormalsAreZero = 0x0040;
  bool flush_denormals_;
  std::vector<float> scratch_;       // (cols) exponentials of one row
  std::vector<float> conv_scratch_;  // direct and Winograd convolutions' weights and tiles
#ifdef DDP_HAVE_DNNL
  OneDnnConvolutions convolutions_;
#endif
};

}  // namespace

std::unique_ptr<ComputeBackend> make_cpu_backend(bool flush_denormals) {
  return std::make_unique<CpuBackend>(flush_denormals);
}

}  // namespace ddp
