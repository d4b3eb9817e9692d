// CPU backend: dense layers in cpu_dense.h, convolutions in cpu_convolutions.h; plain loops, which
// the compiler vectorizes, for everything else.

#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "backend/activation_grad.h"
#include "backend/backend.h"
#include "backend/cpu_activations.h"
#include "backend/cpu_attention.h"
#include "backend/cpu_batch_norm.h"
#include "backend/cpu_convolutions.h"
#include "backend/cpu_dense.h"
#include "backend/cpu_depthwise.h"
#include "backend/cpu_embedding.h"
#include "backend/cpu_flat_ops.h"
#include "backend/cpu_layer_norm.h"
#include "backend/cpu_losses.h"
#include "backend/cpu_recurrent.h"
#include "backend/cpu_softmax.h"
#include "backend/cpu_updates.h"
#include "backend/cpu_window_ops.h"
#include "backend/host_buffers.h"
#include "backend/host_readback.h"
#include "backend/team_shares.h"
#include "core/bf16.h"
#include "core/error.h"

namespace ddp {
namespace {

class CpuBackend final : public ComputeBackend {
 public:
  CpuBackend(bool flush_denormals, int threads, bool bf16)
      : flush_denormals_(flush_denormals),
        team_(threads),
        bf16_(bf16 ? cpu::make_bf16_products() : nullptr),
        dense_{team_, bf16_.get()},
        convolutions_(team_, bf16 && cpu::native_bf16_products()) {
    if (flush_denormals) _mm_setcsr(_mm_getcsr() | kFlushToZero | kDenormalsAreZero);
  }
  std::string name() const override {
    std::string gemm = cpu::gemm_description(bf16_ != nullptr);
    if (!convolutions_.description().empty()) gemm += ", " + convolutions_.description();
    if (team_.size() > 1)
      gemm += ", dense layers and convolutions on " + std::to_string(team_.size()) + " threads";
    return "cpu (" + gemm + (flush_denormals_ ? ", denormals flushed to zero)" : ")");
  }
  MemoryKind memory() const override { return MemoryKind::kHost; }

  float* allocate(size_t count) override { return allocate_host_buffer(count); }
  void release(float* data) override { release_host_buffer(data); }
  // An empty copy may name null buffers (a model without buffers), which memcpy may not take.
  void copy_to_device(const float* host, float* device, size_t count) override {
    if (count > 0) std::memcpy(device, host, count * sizeof(float));
  }
  void share_host_work(int64_t count, const std::function<void(int64_t, int64_t)>& work) override {
    cpu::shares(team_, count, 1, work);
  }
  void copy_to_host(const float* device, float* host, size_t count) override {
    if (count > 0) std::memcpy(host, device, count * sizeof(float));
  }
  void fill_zero(float* device, size_t count) override {
    if (count > 0) std::memset(device, 0, count * sizeof(float));
  }
  void prepare_for_writing(float* data, size_t count) override {
    prepare_host_memory_for_writing(data, count);
  }

  void dense_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                     int64_t in, int64_t out, Activation act) override {
    cpu::dense_forward(dense_, x, w, b, y, batch, in, out, act);
  }
  void dense_backward(const float* x, const float* w, const float* y, float* dy, float* dx,
                      float* dw, float* db, int64_t batch, int64_t in, int64_t out, Activation act,
                      bool accumulate, const GradBlockConsumer* consume_dw) override {
    cpu::dense_backward(dense_, x, w, y, dy, dx, dw, db, batch, in, out, act, accumulate,
                        consume_dw);
  }
  void dense_input_grad(const float* w, const float* y, float* dy, float* dx, int64_t batch,
                        int64_t in, int64_t out, Activation act) override {
    cpu::dense_input_grad(dense_, w, y, dy, dx, batch, in, out, act);
  }
  void dense_weight_grad_rows(const float* x, const float* dy, int64_t batch, int64_t in,
                              int64_t out, int64_t first_row, int64_t end_row, float* db,
                              const GradBlockConsumer& consume) override {
    cpu::dense_weight_grad_rows(dense_, x, dy, batch, in, out, first_row, end_row, db, consume);
  }

  bool prefers_update_in_backward() const override { return true; }

  void activation_forward(Activation act, const float* x, float* y, size_t count) override {
    cpu::split_elements(team_, count, [&](size_t begin, size_t end) {
      if (derivative_from_output(act))
        cpu::fused_activation(act, x + begin, y + begin, end - begin);
      else
        cpu::unfused_activation(act, x + begin, y + begin, end - begin);
    });
  }
  void leaky_scale(const float* sign, const float* values, float* out, size_t count,
                   float slope) override {
    cpu::leaky_scale(team_, sign, values, out, count, slope);
  }
  void scale_shift(const float* x, float* y, size_t count, float scale, float shift) override {
    cpu::scale_shift(team_, x, y, count, scale, shift);
  }
  void activation_backward(Activation act, const float* x, const float* y, const float* dy,
                           float* dx, size_t count) override {
    cpu::split_elements(team_, count, [&](size_t begin, size_t end) {
      if (derivative_from_output(act))
        cpu::activation_grad(act, y + begin, dy + begin, dx + begin, end - begin);
      else
        cpu::unfused_activation_grad(act, x + begin, dy + begin, dx + begin, end - begin);
    });
  }

  void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols) override {
    cpu::softmax_rows(x, y, rows, cols);
  }
  void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows,
                        int64_t cols) override {
    cpu::softmax_backward_rows(y, dy, dx, rows, cols);
  }

  LossStats softmax_cross_entropy(const float* logits, const float* targets,
                                  const float* row_weight, TargetKind kind, float* dlogits,
                                  float grad_scale, int64_t rows, int64_t cols,
                                  Readback readback) override {
    return readback_.deliver(cpu::softmax_cross_entropy(logits, targets, row_weight, kind, dlogits,
                                                        grad_scale, rows, cols, scratch_),
                             readback);
  }

  LossStats sigmoid_cross_entropy(const float* logits, const float* targets,
                                  const float* row_weight, const float* pos_weight, float* dlogits,
                                  float grad_scale, int64_t rows, int64_t cols,
                                  Readback readback) override {
    return readback_.deliver(cpu::sigmoid_cross_entropy(logits, targets, row_weight, pos_weight,
                                                        dlogits, grad_scale, rows, cols),
                             readback);
  }
  double weight_penalty(const float* weights, float* grads, size_t count, float l1,
                        float l2) override {
    return cpu::weight_penalty(weights, grads, count, l1, l2);
  }
  LossStats mean_squared_error(const float* pred, const float* targets, const float* row_weight,
                               float* dpred, float grad_scale, int64_t rows, int64_t cols,
                               Readback readback) override {
    return readback_.deliver(
        cpu::mean_squared_error(pred, targets, row_weight, dpred, grad_scale, rows, cols),
        readback);
  }

  // Note [convolutions on threads].
  bool conv2d_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                      const Window2d& win, int64_t filters, Activation act) override {
    return convolutions_.forward(x, w, b, y, batch, win, filters, act);
  }
  bool conv2d_backward(const float* x, const float* w, const float* y, float* dy, float* dx,
                       float* dw, float* db, int64_t batch, const Window2d& win, int64_t filters,
                       Activation act, bool accumulate) override {
    return convolutions_.backward(x, w, y, dy, dx, dw, db, batch, win, filters, act, accumulate);
  }

  void im2col(const float* x, float* cols, int64_t batch, const Window2d& w) override {
    cpu::im2col(x, cols, batch, w);
  }
  void col2im(const float* cols, float* dx, int64_t batch, const Window2d& w) override {
    cpu::col2im(cols, dx, batch, w);
  }
  void bias_activation_forward(float* y, const float* b, int64_t rows, int64_t cols,
                               Activation act) override {
    cpu::bias_activation(team_, y, b, rows, cols, act);
  }
  void bias_activation_backward(const float* y, float* dy, float* db, int64_t rows, int64_t cols,
                                Activation act, bool accumulate) override {
    cpu::bias_activation_grad(team_, y, dy, db, rows, cols, act, accumulate);
  }
  void depthwise_forward(const float* x, const float* w, float* y, int64_t batch,
                         const Window2d& win) override {
    cpu::depthwise_forward(team_, x, w, y, batch, win);
  }
  void depthwise_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                          int64_t batch, const Window2d& win, bool accumulate) override {
    cpu::depthwise_backward(team_, x, w, dy, dx, dw, batch, win, accumulate);
  }
  // Pooling and dropout on the team's shares of the batch: each sample's output is computed alone,
  // so the shares change no bit (as activations and batch normalization's rows).
  void max_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w) override {
    cpu::by_rows(team_, batch, in_size(w), [&](int64_t first, int64_t n) {
      cpu::max_pool_forward(x + first * in_size(w), y + first * out_size(w), n, w);
    });
  }
  void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                         const Window2d& w) override {
    cpu::by_rows(team_, batch, in_size(w), [&](int64_t first, int64_t n) {
      const int64_t in = first * in_size(w), out = first * out_size(w);
      cpu::max_pool_backward(x + in, y + out, dy + out, dx + in, n, w);
    });
  }
  // The mask, (batch, height * width), starts each share at its first sample's row.
  void avg_pool_forward(const float* x, const float* mask, float* y, int64_t batch,
                        const Window2d& w, bool mean) override {
    cpu::by_rows(team_, batch, in_size(w), [&](int64_t first, int64_t n) {
      cpu::avg_pool_forward(x + first * in_size(w), mask ? mask + first * w.height * w.width : mask,
                            y + first * out_size(w), n, w, mean);
    });
  }
  void avg_pool_backward(const float* mask, const float* dy, float* dx, int64_t batch,
                         const Window2d& w, bool mean) override {
    cpu::by_rows(team_, batch, in_size(w), [&](int64_t first, int64_t n) {
      cpu::avg_pool_backward(mask ? mask + first * w.height * w.width : mask,
                             dy + first * out_size(w), dx + first * in_size(w), n, w, mean);
    });
  }
  void dropout(const float* in, float* out, int64_t rows, int64_t row_size, int64_t steps,
               float rate, uint64_t key, int64_t first_row) override {
    cpu::by_rows(team_, rows, row_size, [&](int64_t first, int64_t n) {
      cpu::dropout(in + first * row_size, out + first * row_size, n, row_size, steps, rate, key,
                   first_row + first);
    });
  }

  void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                    int64_t rows, int64_t channels) override {
    cpu::channel_sums_on(team_, partial_sums_, a, b, shift, host_sums, rows, channels);
  }
  void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                          int64_t channels) override {
    cpu::by_rows(team_, rows, channels, [&](int64_t first, int64_t n) {
      cpu::batch_norm_forward(x + first * channels, y + first * channels, coeffs, n, channels);
    });
  }
  void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                           int64_t rows, int64_t channels) override {
    cpu::by_rows(team_, rows, channels, [&](int64_t first, int64_t n) {
      const int64_t at = first * channels;
      cpu::batch_norm_backward(dy + at, x + at, dx + at, coeffs, n, channels);
    });
  }

  void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                          float* stats, int64_t rows, int64_t cols, float epsilon,
                          bool center) override {
    cpu::by_rows(team_, rows, cols, [&](int64_t first, int64_t n) {
      cpu::layer_norm_rows(x + first * cols, gamma, beta, y + first * cols, stats + 2 * first, n,
                           cols, epsilon, center);
    });
  }
  // The parameter gradients first, from dy before dx (which may alias it) overwrites it.
  void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* stats,
                           float* dx, float* dgamma, float* dbeta, int64_t rows, int64_t cols,
                           bool accumulate, bool center) override {
    cpu::split_elements(team_, static_cast<size_t>(cols), [&](size_t c0, size_t c1) {
      cpu::layer_norm_param_grads(dy, x, stats, dgamma, dbeta, rows, cols, static_cast<int64_t>(c0),
                                  static_cast<int64_t>(c1), accumulate);
    });
    if (!dx) return;
    cpu::by_rows(team_, rows, cols, [&](int64_t first, int64_t n) {
      const int64_t at = first * cols;
      cpu::layer_norm_input_grad(dy + at, x + at, gamma, stats + 2 * first, dx + at, n, cols,
                                 center);
    });
  }

  void embedding_forward(const float* ids, const float* table, float* y, int64_t count,
                         int64_t dim) override {
    cpu::by_rows(team_, count, dim, [&](int64_t first, int64_t n) {
      cpu::embedding_rows(ids + first, table, y + first * dim, n, dim);
    });
  }
  // The threads take shares of the columns, each column's rows added in order on one thread.
  void embedding_backward(const float* ids, const float* dy, float* dtable, int64_t count,
                          int64_t vocabulary, int64_t dim, bool accumulate) override {
    cpu::by_rows(team_, dim, count + vocabulary, [&](int64_t first, int64_t n) {
      cpu::embedding_grad_columns(ids, dy, dtable, count, vocabulary, dim, first, first + n,
                                  accumulate);
    });
  }

  void copy_matrix(const float* src, int64_t src_row_stride, int64_t src_col_stride, float* dst,
                   int64_t dst_row_stride, int64_t rows, int64_t cols) override {
    cpu::copy_matrix(src, src_row_stride, src_col_stride, dst, dst_row_stride, rows, cols);
  }
  void batched_matmul(int64_t count, int64_t m, int64_t n, int64_t k, float alpha,
                      const MatrixOperand& a, const MatrixOperand& b, const MatrixResult& c,
                      bool accumulate) override {
    cpu::by_rows(team_, count, m * n * k, [&](int64_t first, int64_t items) {
      cpu::batched_matmul(first, first + items, m, n, k, alpha, a, b, c, accumulate);
    });
  }
  void mask_keys(float* scores, const float* key_mask, bool causal, int64_t samples, int64_t rows,
                 int64_t steps, float value) override {
    cpu::mask_keys(scores, key_mask, causal, samples, rows, steps, value);
  }
  void add_to(const float* x, float* y, size_t count) override { cpu::add_to(team_, x, y, count); }
  void moving_average(const float* x, float* average, size_t count, float momentum) override {
    cpu::moving_average(team_, x, average, count, momentum);
  }
  void carry_rows(const float* mask, const float* from, float* to, int64_t rows,
                  int64_t width) override {
    for (int64_t r = 0; r < rows; ++r)
      if (mask[r] == 0) std::copy_n(from + r * width, width, to + r * width);
  }
  void masking_forward(const float* x, float value, float* mask, float* y, int64_t rows,
                       int64_t width) override {
    cpu::by_rows(team_, rows, width, [&](int64_t first, int64_t n) {
      cpu::masking_forward_rows(x, value, mask, y, first, first + n, width);
    });
  }
  void masking_backward(const float* mask, const float* dy, float* dx, int64_t rows,
                        int64_t width) override {
    cpu::by_rows(team_, rows, width, [&](int64_t first, int64_t n) {
      cpu::masked_rows(mask, dy, dx, first, first + n, width);
    });
  }
  void lstm_cell_forward(const float* xp, const float* hu, const float* c_prev, float* gates,
                         float* c, float* h, int64_t batch, int64_t units) override {
    cpu::by_rows(team_, batch, 4 * units, [&](int64_t first, int64_t n) {
      cpu::lstm_forward_rows(xp, hu, c_prev, gates, c, h, first, first + n, units);
    });
  }
  void lstm_cell_backward(const float* gates, const float* c_prev, const float* c, const float* dh,
                          const float* dh_more, float* dc, float* dgates, int64_t batch,
                          int64_t units) override {
    cpu::by_rows(team_, batch, 4 * units, [&](int64_t first, int64_t n) {
      cpu::lstm_backward_rows(gates, c_prev, c, dh, dh_more, dc, dgates, first, first + n, units);
    });
  }
  void gru_cell_forward(const float* xp, const float* hu, const float* h_prev, float* kept,
                        float* h, int64_t batch, int64_t units) override {
    cpu::by_rows(team_, batch, 4 * units, [&](int64_t first, int64_t n) {
      cpu::gru_forward_rows(xp, hu, h_prev, kept, h, first, first + n, units);
    });
  }
  void gru_cell_backward(const float* kept, const float* h_prev, const float* dh,
                         const float* dh_more, float* carry, float* dxp, float* dhu, int64_t batch,
                         int64_t units) override {
    cpu::by_rows(team_, batch, 4 * units, [&](int64_t first, int64_t n) {
      cpu::gru_backward_rows(kept, h_prev, dh, dh_more, carry, dxp, dhu, first, first + n, units);
    });
  }

  bool all_finite(const float* data, size_t count) override { return cpu::all_finite(data, count); }

  double squared_norm(const float* data, size_t count) override {
    return cpu::squared_sum(data, count);
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
                  float grad_scale, const SgdHyper& hyper, GradCheck check) override {
    return readback_.checked(
        cpu::sgd_update(team_, params, grads, velocity, count, lr, grad_scale, hyper), check);
  }
  bool adam_update(float* params, const float* grads, float* m, float* v, size_t count, float lr,
                   float grad_scale, int64_t step, const AdamHyper& hyper,
                   GradCheck check) override {
    const cpu::AdamStep c = cpu::adam_step(lr, grad_scale, step, hyper);
    return readback_.checked(cpu::adam_update(team_, params, grads, m, v, count, c), check);
  }
  bool rmsprop_update(float* params, const float* grads, RmspropState state, size_t count, float lr,
                      float grad_scale, const RmspropHyper& hyper, GradCheck check) override {
    return readback_.checked(
        cpu::rmsprop_update(team_, params, grads, state, count, lr, grad_scale, hyper), check);
  }
  bool adaptive_update(float* params, const float* grads, AdaptiveState state, size_t count,
                       const AdaptiveStep& step, GradCheck check) override {
    return readback_.checked(cpu::adaptive_update(team_, params, grads, state, count, step), check);
  }
  LossStats take_loss_stats() override { return readback_.take_loss_stats(); }
  bool take_nonfinite() override { return readback_.take_nonfinite(); }

 private:
  static int64_t in_size(const Window2d& w) { return w.height * w.width * w.channels; }
  static int64_t out_size(const Window2d& w) { return w.out_pixels() * w.channels; }

  static constexpr unsigned kFlushToZero = 0x8000;
  static constexpr unsigned kDenormalsAreZero = 0x0040;
  bool flush_denormals_;
  ThreadTeam team_;                          // Note [threads per rank]
  std::unique_ptr<cpu::Bf16Products> bf16_;  // Note [bf16 products]; null: fp32
  cpu::DenseContext dense_;
  std::vector<float> scratch_;        // (cols) exponentials of one row
  cpu::Convolutions convolutions_;    // Note [convolutions on threads]
  std::vector<double> partial_sums_;  // channel_sums' pieces
  HostReadback readback_;
};

}  // namespace

std::unique_ptr<ComputeBackend> make_cpu_backend(bool flush_denormals, int threads,
                                                 MatmulPrecision precision) {
  return std::make_unique<CpuBackend>(flush_denormals, threads,
                                      precision == MatmulPrecision::kBf16);
}

}  // namespace ddp
