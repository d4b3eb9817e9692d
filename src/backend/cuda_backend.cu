// CUDA backend: cuBLAS for the GEMMs, small kernels for everything else, one stream. Kernels sit
// above the member functions that launch them; the CPU backend's ops are the specification.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda_activations.h"
#include "backend/cuda_batch_norm.h"
#include "backend/cuda_check.h"
#include "backend/cuda_depthwise.h"
#include "backend/cuda_embedding.h"
#include "backend/cuda_flat_ops.h"
#include "backend/cuda_gemm.h"
#include "backend/cuda_layer_norm.h"
#include "backend/cuda_losses.h"
#include "backend/cuda_pinned_staging.h"
#include "backend/cuda_readback.h"
#include "backend/cuda_recurrent.h"
#include "backend/cuda_window_ops.h"
#include "core/error.h"

namespace ddp {

void throw_gpu_error(const char* library, const std::string& what, const char* call,
                     const char* file, int line) {
  throw RuntimeError(std::string(library) + " error in " + call + " (" + file + ":" +
                     std::to_string(line) + "): " + what);
}

namespace {

class CudaBackend final : public ComputeBackend {
 public:
  CudaBackend(int device, MatmulPrecision precision) : device_(device), precision_(precision) {
    cudaCheck(cudaSetDevice(device));
    cudaCheck(cudaStreamCreate(&stream_));
    cublasCheck(cublasCreate(&cublas_));
    cublasCheck(cublasSetStream(cublas_, stream_));
    // Plain FP32 GEMMs unless asked: the CPU backend is the reference, and TF32 differs by ~1e-3.
    // bf16 operands are cublasGemmEx's compute type instead (cuda::gemm).
    cublasCheck(cublasSetMathMode(cublas_, precision == MatmulPrecision::kTf32
                                               ? CUBLAS_TF32_TENSOR_OP_MATH
                                               : CUBLAS_PEDANTIC_MATH));
    cudaCheck(cudaMalloc(&flag_, sizeof(int)));
    staging_ = std::make_unique<cuda::PinnedStaging>();
  }
  ~CudaBackend() override {
    staging_.reset();
    cudaFree(flag_);
    cudaFree(row_stats_);
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override {
    return "cuda:" + std::to_string(device_) +
           (precision_ == MatmulPrecision::kTf32   ? " (tf32)"
            : precision_ == MatmulPrecision::kBf16 ? " (bf16 products)"
                                                   : "");
  }
  MemoryKind memory() const override { return MemoryKind::kDevice; }
  cudaStream_t stream() const { return stream_; }

  float* allocate(size_t count) override {
    float* p = nullptr;
    cudaCheck(cudaMalloc(&p, std::max<size_t>(count, 1) * sizeof(float)));
    cudaCheck(cudaMemsetAsync(p, 0, count * sizeof(float), stream_));
    return p;
  }
  void release(float* data) override { cudaFree(data); }
  void copy_to_device(const float* host, float* device, size_t count) override {
    staging_->copy_to_device(host, device, count, stream_);
  }
  void copy_to_host(const float* device, float* host, size_t count) override {
    cudaCheck(
        cudaMemcpyAsync(host, device, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    cudaCheck(cudaStreamSynchronize(stream_));
  }
  void fill_zero(float* device, size_t count) override {
    cudaCheck(cudaMemsetAsync(device, 0, count * sizeof(float), stream_));
  }

  void dense_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                     int64_t in, int64_t out, Activation act) override {
    gemm(false, true, batch, out, in, x, w, y, false);
    bias_activation_forward(y, b, batch, out, act);
  }

  void dense_backward(const float* x, const float* w, const float* y, float* dy, float* dx,
                      float* dw, float* db, int64_t batch, int64_t in, int64_t out, Activation act,
                      bool accumulate, const GradBlockConsumer* consume_dw) override {
    bias_activation_backward(y, dy, db, batch, out, act, accumulate);
    gemm(true, false, out, in, batch, dy, x, dw, accumulate);
    if (dx) gemm(false, false, batch, in, out, dy, w, dx, false);
    // Stream order puts the consumer's kernels (an update of w) after the product that reads w.
    if (consume_dw)
      (*consume_dw)({.first_row = 0, .rows = out, .first_col = 0, .cols = in, .data = dw});
  }

  bool prefers_update_in_backward() const override { return false; }

  void bias_activation_forward(float* y, const float* b, int64_t rows, int64_t cols,
                               Activation act) override {
    cuda::bias_activation(y, b, rows, cols, act, stream_);
  }
  void bias_activation_backward(const float* y, float* dy, float* db, int64_t rows, int64_t cols,
                                Activation act, bool accumulate) override {
    cuda::activation_backward(act, nullptr, y, dy, dy, static_cast<size_t>(rows * cols), stream_);
    cuda::column_sums(dy, db, rows, cols, accumulate, stream_);
  }

  void activation_forward(Activation act, const float* x, float* y, size_t count) override {
    cuda::activation_forward(act, x, y, count, stream_);
  }
  void leaky_scale(const float* sign, const float* values, float* out, size_t count,
                   float slope) override {
    cuda::leaky_scale(sign, values, out, count, slope, stream_);
  }
  void scale_shift(const float* x, float* y, size_t count, float scale, float shift) override {
    cuda::scale_shift(x, y, count, scale, shift, stream_);
  }
  void activation_backward(Activation act, const float* x, const float* y, const float* dy,
                           float* dx, size_t count) override {
    cuda::activation_backward(act, x, y, dy, dx, count, stream_);
  }

  void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols) override {
    cuda::softmax_forward(x, y, rows, cols, stream_);
  }
  void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows,
                        int64_t cols) override {
    cuda::softmax_backward(y, dy, dx, rows, cols, stream_);
  }

  LossStats softmax_cross_entropy(const float* logits, const float* targets,
                                  const float* row_weight, TargetKind kind, float* dlogits,
                                  float grad_scale, int64_t rows, int64_t cols,
                                  Readback readback) override {
    reserve_row_stats(rows);
    cuda::softmax_cross_entropy(logits, targets, row_weight, kind == TargetKind::kSparse, dlogits,
                                grad_scale, rows, cols, row_stats_, row_stats_ + rows, stream_);
    return sum_row_stats(rows, readback);
  }
  LossStats sigmoid_cross_entropy(const float* logits, const float* targets,
                                  const float* row_weight, const float* pos_weight, float* dlogits,
                                  float grad_scale, int64_t rows, int64_t cols,
                                  Readback readback) override {
    reserve_row_stats(rows);
    cuda::sigmoid_cross_entropy(logits, targets, row_weight, pos_weight, dlogits, grad_scale, rows,
                                cols, row_stats_, row_stats_ + rows, stream_);
    return sum_row_stats(rows, readback);
  }
  double weight_penalty(const float* weights, float* grads, size_t count, float l1,
                        float l2) override {
    return cuda::weight_penalty(weights, grads, count, l1, l2, reduction_scratch_, stream_);
  }
  LossStats mean_squared_error(const float* pred, const float* targets, const float* row_weight,
                               float* dpred, float grad_scale, int64_t rows, int64_t cols,
                               Readback readback) override {
    reserve_row_stats(rows);
    cuda::mean_squared_error(pred, targets, row_weight, dpred, grad_scale, rows, cols, row_stats_,
                             row_stats_ + rows, stream_);
    return sum_row_stats(rows, readback);
  }

  void im2col(const float* x, float* cols, int64_t batch, const Window2d& w) override {
    cuda::im2col(x, cols, batch, w, stream_);
  }
  void col2im(const float* cols, float* dx, int64_t batch, const Window2d& w) override {
    cuda::col2im(cols, dx, batch, w, stream_);
  }
  void max_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w) override {
    cuda::max_pool_forward(x, y, batch, w, stream_);
  }
  void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                         const Window2d& w) override {
    cuda::max_pool_backward(x, y, dy, dx, batch, w, stream_);
  }
  void depthwise_forward(const float* x, const float* w, float* y, int64_t batch,
                         const Window2d& win) override {
    cuda::depthwise_forward(x, w, y, batch, win, stream_);
  }
  void depthwise_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                          int64_t batch, const Window2d& win, bool accumulate) override {
    cuda::depthwise_backward(x, w, dy, dx, dw, batch, win, accumulate, stream_);
  }
  void avg_pool_forward(const float* x, const float* mask, float* y, int64_t batch,
                        const Window2d& w, bool mean) override {
    cuda::avg_pool_forward(x, mask, y, batch, w, mean, stream_);
  }
  void avg_pool_backward(const float* mask, const float* dy, float* dx, int64_t batch,
                         const Window2d& w, bool mean) override {
    cuda::avg_pool_backward(mask, dy, dx, batch, w, mean, stream_);
  }
  void dropout(const float* in, float* out, int64_t rows, int64_t row_size, int64_t steps,
               float rate, uint64_t key, int64_t first_row) override {
    cuda::dropout(in, out, rows, row_size, steps, rate, key, first_row, stream_);
  }

  void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                    int64_t rows, int64_t channels) override {
    cuda::channel_sums(a, b, shift, host_sums, rows, channels, reduction_scratch_, stream_);
  }
  void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                          float* stats, int64_t rows, int64_t cols, float epsilon,
                          bool center) override {
    cuda::layer_norm_forward(x, gamma, beta, y, stats, rows, cols, epsilon, center, stream_);
  }
  void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* stats,
                           float* dx, float* dgamma, float* dbeta, int64_t rows, int64_t cols,
                           bool accumulate, bool center) override {
    cuda::layer_norm_backward(dy, x, gamma, stats, dx, dgamma, dbeta, rows, cols, accumulate,
                              center, stream_);
  }
  void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                          int64_t channels) override {
    cuda::batch_norm_forward(x, y, coeffs, rows, channels, stream_);
  }
  void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                           int64_t rows, int64_t channels) override {
    cuda::batch_norm_backward(dy, x, dx, coeffs, rows, channels, stream_);
  }

  void embedding_forward(const float* ids, const float* table, float* y, int64_t count,
                         int64_t dim) override {
    cuda::embedding_forward(ids, table, y, count, dim, stream_);
  }
  void embedding_backward(const float* ids, const float* dy, float* dtable, int64_t count,
                          int64_t vocabulary, int64_t dim, bool accumulate) override {
    cuda::embedding_backward(ids, dy, dtable, count, vocabulary, dim, accumulate, stream_);
  }
  void copy_matrix(const float* src, int64_t src_row_stride, int64_t src_col_stride, float* dst,
                   int64_t dst_row_stride, int64_t rows, int64_t cols) override {
    cuda::copy_matrix(src, src_row_stride, src_col_stride, dst, dst_row_stride, rows, cols,
                      stream_);
  }
  void add_to(const float* x, float* y, size_t count) override {
    cuda::add_to(x, y, count, stream_);
  }
  void batched_matmul(int64_t count, int64_t m, int64_t n, int64_t k, float alpha,
                      const MatrixOperand& a, const MatrixOperand& b, const MatrixResult& c,
                      bool accumulate) override {
    cuda::batched_matmul(cublas_, count, m, n, k, alpha, a, b, c, accumulate);
  }
  void mask_keys(float* scores, const float* key_mask, bool causal, int64_t samples, int64_t rows,
                 int64_t steps, float value) override {
    cuda::mask_keys(scores, key_mask, causal, samples, rows, steps, value, stream_);
  }
  void carry_rows(const float* mask, const float* from, float* to, int64_t rows,
                  int64_t width) override {
    cuda::carry_rows(mask, from, to, rows, width, stream_);
  }
  void masking_forward(const float* x, float value, float* mask, float* y, int64_t rows,
                       int64_t width) override {
    cuda::masking_forward(x, value, mask, y, rows, width, stream_);
  }
  void masking_backward(const float* mask, const float* dy, float* dx, int64_t rows,
                        int64_t width) override {
    cuda::masking_backward(mask, dy, dx, rows, width, stream_);
  }
  void lstm_cell_forward(const float* xp, const float* hu, const float* c_prev, float* gates,
                         float* c, float* h, int64_t batch, int64_t units) override {
    cuda::lstm_cell_forward(xp, hu, c_prev, gates, c, h, batch, units, stream_);
  }
  void lstm_cell_backward(const float* gates, const float* c_prev, const float* c, const float* dh,
                          const float* dh_more, float* dc, float* dgates, int64_t batch,
                          int64_t units) override {
    cuda::lstm_cell_backward(gates, c_prev, c, dh, dh_more, dc, dgates, batch, units, stream_);
  }
  void gru_cell_forward(const float* xp, const float* hu, const float* h_prev, float* kept,
                        float* h, int64_t batch, int64_t units) override {
    cuda::gru_cell_forward(xp, hu, h_prev, kept, h, batch, units, stream_);
  }
  void gru_cell_backward(const float* kept, const float* h_prev, const float* dh,
                         const float* dh_more, float* carry, float* dxp, float* dhu, int64_t batch,
                         int64_t units) override {
    cuda::gru_cell_backward(kept, h_prev, dh, dh_more, carry, dxp, dhu, batch, units, stream_);
  }
  bool all_finite(const float* data, size_t count) override {
    cudaCheck(cudaMemsetAsync(flag_, 0, sizeof(int), stream_));
    cuda::flag_non_finite(data, count, flag_, stream_);
    return flag_clear();
  }

  double squared_norm(const float* data, size_t count) override {
    return weight_penalty(data, nullptr, count, 0, 1);  // its l2 sum, in a fixed order
  }
  void moving_average(const float* x, float* average, size_t count, float momentum) override {
    cuda::moving_average(x, average, count, momentum, stream_);
  }
  void to_bf16(const float* src, uint16_t* dst, size_t count) override {
    cuda::to_bf16(src, dst, count, stream_);
  }
  void from_bf16(const uint16_t* src, float* dst, size_t count) override {
    cuda::from_bf16(src, dst, count, stream_);
  }

  bool sgd_update(float* params, const float* grads, float* velocity, size_t count, float lr,
                  float grad_scale, const SgdHyper& hyper, GradCheck check) override {
    cuda::sgd_update(params, grads, velocity, count, lr, grad_scale, hyper, check_flag(check),
                     stream_);
    return checked(check);
  }
  bool adam_update(float* params, const float* grads, float* m, float* v, size_t count, float lr,
                   float grad_scale, int64_t step, const AdamHyper& hyper,
                   GradCheck check) override {
    cuda::adam_update(params, grads, m, v, count, lr, grad_scale, step, hyper, check_flag(check),
                      stream_);
    return checked(check);
  }
  bool rmsprop_update(float* params, const float* grads, RmspropState state, size_t count, float lr,
                      float grad_scale, const RmspropHyper& hyper, GradCheck check) override {
    cuda::rmsprop_update(params, grads, state, count, lr, grad_scale, hyper, check_flag(check),
                         stream_);
    return checked(check);
  }
  bool adaptive_update(float* params, const float* grads, AdaptiveState state, size_t count,
                       const AdaptiveStep& step, GradCheck check) override {
    cuda::adaptive_update(params, grads, state, count, step, check_flag(check), stream_);
    return checked(check);
  }
  LossStats take_loss_stats() override { return readback_.take_loss_stats(stream_); }
  bool take_nonfinite() override { return readback_.take_nonfinite(stream_); }

 private:
  void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, const float* b,
            float* c, bool accumulate) {
    cuda::gemm(cublas_, precision_, ta, tb, m, n, k, a, b, c, accumulate);
  }

  void reserve_row_stats(int64_t rows) {
    if (rows <= row_stats_rows_) return;
    cudaFree(row_stats_);
    cudaCheck(cudaMalloc(&row_stats_, 2 * static_cast<size_t>(rows) * sizeof(double)));
    row_stats_rows_ = rows;
    host_row_stats_.resize(2 * static_cast<size_t>(rows));
  }

  // The flag an update under `check` sets on a NaN or infinity (null: no check).
  int* check_flag(GradCheck check) {
    if (check == GradCheck::kFinite) cudaCheck(cudaMemsetAsync(flag_, 0, sizeof(int), stream_));
    return check == GradCheck::kFinite        ? flag_
           : check == GradCheck::kFiniteLater ? readback_.nonfinite_flag()
                                              : nullptr;
  }
  // The answer of an update under `check` that was just queued.
  bool checked(GradCheck check) {
    if (check == GradCheck::kFiniteLater) readback_.flag_queued(stream_);
    return check != GradCheck::kFinite || flag_clear();
  }
  // Waits for the stream: whether what it queued left flag_ at zero.
  bool flag_clear() {
    int flag = 0;
    cudaCheck(cudaMemcpyAsync(&flag, flag_, sizeof(int), cudaMemcpyDeviceToHost, stream_));
    cudaCheck(cudaStreamSynchronize(stream_));
    return flag == 0;
  }

  LossStats sum_row_stats(int64_t rows, Readback readback) {
    if (readback == Readback::kLater) {
      readback_.hold_loss(row_stats_, row_stats_ + rows, rows, stream_);
      return {};
    }
    cudaCheck(cudaMemcpyAsync(host_row_stats_.data(), row_stats_,
                              2 * static_cast<size_t>(rows) * sizeof(double),
                              cudaMemcpyDeviceToHost, stream_));
    cudaCheck(cudaStreamSynchronize(stream_));
    LossStats stats;
    for (int64_t r = 0; r < rows; ++r) {
      stats.loss_sum += host_row_stats_[r];
      stats.correct += host_row_stats_[rows + r];
    }
    return stats;
  }

  int device_;
  MatmulPrecision precision_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::PinnedStaging> staging_;
  cublasHandle_t cublas_ = nullptr;
  int* flag_ = nullptr;
  double* row_stats_ = nullptr;  // (2, rows): per-row loss, then per-row correct
  int64_t row_stats_rows_ = 0;
  std::vector<double> host_row_stats_;
  cuda::DeviceDoubles reduction_scratch_;  // partial sums of channel_sums and weight_penalty
  cuda::DeviceReadback readback_;          // Note [deferred readback]
};

}  // namespace

// Entry points of the libddp_cuda module (see backend/device.cpp, Note [CUDA module]).
extern "C" ComputeBackend* ddp_cuda_make_backend(int device, int precision) {
  return new CudaBackend(device, static_cast<MatmulPrecision>(precision));
}

extern "C" void* ddp_cuda_stream(ComputeBackend* backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(backend);
  return cuda ? static_cast<void*>(cuda->stream()) : nullptr;
}

extern "C" int ddp_cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

}  // namespace ddp
