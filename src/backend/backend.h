#pragma once
// The compute interface: memory plus fused forward/backward pairs, one pair per op. The CPU
// implementation uses Eigen; a CUDA implementation plugs in behind the same calls. All pointers
// are backend memory (host memory for the CPU backend) unless a name says "host".

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "backend/activation_kind.h"
#include "backend/grad_block.h"
#include "backend/loss_targets.h"
#include "backend/optimizer_hyper.h"
#include "backend/window2d.h"
#include "core/memory_kind.h"

namespace ddp {

// Whether an optimizer update also checks the gradients it reads (Note [non-finite check]):
// kFinite answers in the update's return value, kFiniteLater through
// ComputeBackend::take_nonfinite() (Note [deferred readback]).
enum class GradCheck { kNone, kFinite, kFiniteLater };

class ComputeBackend {
 public:
  virtual ~ComputeBackend() = default;
  virtual std::string name() const = 0;
  virtual MemoryKind memory() const = 0;  // where allocate() puts buffers

  virtual float* allocate(size_t count) = 0;  // zero-filled
  virtual void release(float* data) = 0;
  virtual void copy_to_device(const float* host, float* device, size_t count) = 0;
  virtual void copy_to_host(const float* device, float* host, size_t count) = 0;
  virtual void fill_zero(float* device, size_t count) = 0;
  // Memory of allocate()'s about to be read and then written element by element (an optimizer's
  // state at its first update): the CPU backend maps its pages writable now
  // (prepare_host_memory_for_writing).
  virtual void prepare_for_writing(float* /*device*/, size_t /*count*/) {}
  // Runs work(begin, end) on contiguous shares of [0, count), on the CPU backend's threads (Note
  // [threads per rank]); host work such as staging a batch. Here: one call.
  virtual void share_host_work(int64_t count,
                               const std::function<void(int64_t begin, int64_t end)>& work) {
    work(0, count);
  }

  // y = act(x W^T + b). x: (batch, in), w: (out, in), b: (out), y: (batch, out)
  virtual void dense_forward(const float* x, const float* w, const float* b, float* y,
                             int64_t batch, int64_t in, int64_t out, Activation act) = 0;
  // Writes dw (out, in) and db (out), or adds to them when `accumulate`; writes dx (batch, in)
  // unless it is null. dy (batch, out) is used as scratch for the pre-activation gradient. y is
  // the forward output. With `consume_dw` (never with `accumulate`) dw's rows go to it instead,
  // block by block, once dx and db are written, so it may update w: a backend that keeps the
  // blocks in cache leaves dw unwritten, another writes dw and hands it over in one block.
  virtual void dense_backward(const float* x, const float* w, const float* y, float* dy, float* dx,
                              float* dw, float* db, int64_t batch, int64_t in, int64_t out,
                              Activation act, bool accumulate,
                              const GradBlockConsumer* consume_dw) = 0;
  // Note [split weight gradients] (host memory only; other backends throw logic_error): the part
  // of dense_backward before the parameter gradients, dy turned into the pre-activation gradient
  // in place and dx (batch, in) written unless it is null; and rows [first_row, end_row) of the
  // weight and bias gradients from x (batch, in) and such a dy, the bias's into db (one float per
  // row), the weight's handed to `consume` block by block.
  virtual void dense_input_grad(const float* /*w*/, const float* /*y*/, float* /*dy*/,
                                float* /*dx*/, int64_t /*batch*/, int64_t /*in*/, int64_t /*out*/,
                                Activation /*act*/) {
    throw std::logic_error(name() + ": weight gradients split over ranks need host memory");
  }
  virtual void dense_weight_grad_rows(const float* /*x*/, const float* /*dy*/, int64_t /*batch*/,
                                      int64_t /*in*/, int64_t /*out*/, int64_t /*first_row*/,
                                      int64_t /*end_row*/, float* /*db*/,
                                      const GradBlockConsumer& /*consume*/) {
    throw std::logic_error(name() + ": weight gradients split over ranks need host memory");
  }
  // Whether the optimizer should take weight gradients from consume_dw during backward (Note
  // [update in backward]): on the CPU the blocks come from cache and no gradient goes to memory;
  // a GPU gains nothing and would wait for each tensor's finiteness check in the middle of
  // backward.
  virtual bool prefers_update_in_backward() const = 0;

  virtual void activation_forward(Activation act, const float* x, float* y, size_t count) = 0;
  // dx = dy * act'(x), from the forward output y where derivative_from_output(act), else from
  // the input x. dx may alias dy.
  virtual void activation_backward(Activation act, const float* x, const float* y, const float* dy,
                                   float* dx, size_t count) = 0;

  // y = x * scale + shift, elementwise (Keras' Rescaling; its gradient with shift 0). y may be x.
  virtual void scale_shift(const float* x, float* y, size_t count, float scale, float shift) = 0;
  // out = values where sign > 0, slope * values elsewhere, elementwise: LeakyReLU's forward with
  // sign = values = x, its backward with sign = y and values = dy (y > 0 where x > 0, slope >= 0).
  // out may be values.
  virtual void leaky_scale(const float* sign, const float* values, float* out, size_t count,
                           float slope) = 0;

  // Row-wise softmax over (rows, cols); y may be x, and dx may be dy.
  virtual void softmax_forward(const float* x, float* y, int64_t rows, int64_t cols) = 0;
  virtual void softmax_backward(const float* y, const float* dy, float* dx, int64_t rows,
                                int64_t cols) = 0;

  // The losses return their sums (zeros with Readback::kLater, see take_loss_stats()). With
  // `row_weight` (backend memory, (rows); Keras' sample_weight) each row's loss and gradient are
  // multiplied by its weight; null weighs every row 1. `correct` is never weighted. A sparse target
  // below zero, or a one-hot row's first, marks a row the softmax loss ignores (PyTorch's
  // ignore_index; Note [masked positions]): no loss, not counted correct, a zero gradient.
  // Fused softmax + cross-entropy on logits (rows, cols). When dlogits is not null it receives
  // grad_scale * d(sum of row losses)/d(logits); the trainer passes 1 / global batch size.
  virtual LossStats softmax_cross_entropy(const float* logits, const float* targets,
                                          const float* row_weight, TargetKind kind, float* dlogits,
                                          float grad_scale, int64_t rows, int64_t cols,
                                          Readback readback) = 0;
  // Fused sigmoid + binary cross-entropy on logits z (rows, cols) against multi-hot targets t
  // (rows, cols), in PyTorch's stable BCEWithLogitsLoss form: element loss
  // (1 - t) z + (1 + (p - 1) t) softplus(-z), p = pos_weight[col] (backend memory; 1 when null);
  // row loss = its mean over cols (Keras). dlogits, when not null, receives grad_scale / cols *
  // ((1 - t) - (1 + (p - 1) t) sigmoid(-z)). `correct` counts elements (not rows) whose
  // prediction, z > 0, matches t > 0.5 (Keras' binary_accuracy).
  virtual LossStats sigmoid_cross_entropy(const float* logits, const float* targets,
                                          const float* row_weight, const float* pos_weight,
                                          float* dlogits, float grad_scale, int64_t rows,
                                          int64_t cols, Readback readback) = 0;
  // Keras' kernel_regularizer over `count` weights: returns l1 * sum |w| + l2 * sum w^2 (summed
  // in double) and, when grads is not null, adds its gradient l1 * sign(w) + 2 l2 w to them.
  virtual double weight_penalty(const float* weights, float* grads, size_t count, float l1,
                                float l2) = 0;
  // Row loss = mean over cols of (pred - target)^2 (Keras' definition).
  virtual LossStats mean_squared_error(const float* pred, const float* targets,
                                       const float* row_weight, float* dpred, float grad_scale,
                                       int64_t rows, int64_t cols, Readback readback) = 0;

  // Convolution as a GEMM (Note [convolution as GEMM]): cols (batch * out_h * out_w, patch())
  // holds each output pixel's window over x (batch, height, width, channels), in (row, column,
  // channel) order, zeros where it reaches into padding. col2im is its adjoint: it writes dx
  // (batch, height, width, channels) as the sum of every cols entry taken from each pixel.
  virtual void im2col(const float* x, float* cols, int64_t batch, const Window2d& w) = 0;
  virtual void col2im(const float* cols, float* dx, int64_t batch, const Window2d& w) = 0;

  // A whole convolution, where the backend has a faster way than im2col + GEMM (Note [Winograd
  // convolution], Note [oneDNN convolutions], Note [direct convolution]); false (nothing done)
  // otherwise, and the caller runs im2col and the Dense ops.
  // y = act(conv(x, w) + b): x (batch, height, width, channels), w (filters, kernel_h, kernel_w,
  // channels), b (filters), y (batch, out_h, out_w, filters). Backward writes dw and db (adds to
  // them when `accumulate`) and dx unless null; dy is scratch (as in dense_backward), y the
  // forward output. A backend answers by shape alone, the same for forward and backward.
  virtual bool conv2d_forward(const float* /*x*/, const float* /*w*/, const float* /*b*/,
                              float* /*y*/, int64_t /*batch*/, const Window2d& /*win*/,
                              int64_t /*filters*/, Activation /*act*/) {
    return false;
  }
  virtual bool conv2d_backward(const float* /*x*/, const float* /*w*/, const float* /*y*/,
                               float* /*dy*/, float* /*dx*/, float* /*dw*/, float* /*db*/,
                               int64_t /*batch*/, const Window2d& /*win*/, int64_t /*filters*/,
                               Activation /*act*/, bool /*accumulate*/) {
    return false;
  }

  // y = act(y + b) over (rows, cols), b (cols) added to each row, act's derivative one of its
  // output (a transposed convolution's bias and activation, after col2im). Backward turns dy into
  // the pre-activation gradient in place and writes db (cols), or adds to it when `accumulate`.
  virtual void bias_activation_forward(float* y, const float* b, int64_t rows, int64_t cols,
                                       Activation act) = 0;
  virtual void bias_activation_backward(const float* y, float* dy, float* db, int64_t rows,
                                        int64_t cols, Activation act, bool accumulate) = 0;

  // Note [depthwise convolution]: y (batch, out_h, out_w, channels) = each channel of x (batch,
  // height, width, channels) convolved with its own kernel, w (channels, kernel_h, kernel_w), over
  // the window `win` (padding, strides, dilation). Backward writes dx where it is not null, and
  // dw, or adds to it when `accumulate`.
  virtual void depthwise_forward(const float* x, const float* w, float* y, int64_t batch,
                                 const Window2d& win) = 0;
  virtual void depthwise_backward(const float* x, const float* w, const float* dy, float* dx,
                                  float* dw, int64_t batch, const Window2d& win,
                                  bool accumulate) = 0;

  // Pooling, x (batch, height, width, channels) -> y (batch, out_h, out_w, channels); padding
  // takes no part (Keras). Backward writes dx: max pooling routes each dy to the first maximum
  // of its window, average pooling spreads it evenly over the window's real pixels. With a mask
  // (batch, height * width) of 1 and 0 (Note [padding masks]), only pixels marked 1 are real; a
  // window with none averages to 0. With `mean` false the average pooling's sums are not divided
  // (each window's sum forward, dy copied to each of its pixels backward: UpSampling2D's
  // backward and forward, Note [upsampling]).
  virtual void max_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w) = 0;
  virtual void max_pool_backward(const float* x, const float* y, const float* dy, float* dx,
                                 int64_t batch, const Window2d& w) = 0;
  virtual void avg_pool_forward(const float* x, const float* mask, float* y, int64_t batch,
                                const Window2d& w, bool mean) = 0;
  virtual void avg_pool_backward(const float* mask, const float* dy, float* dx, int64_t batch,
                                 const Window2d& w, bool mean) = 0;

  // Inverted dropout, out = in * keep / (1 - rate) over (rows, row_size), each row `steps` steps
  // of width = row_size / steps channels that share one mask (1: none shared; more: Keras'
  // SpatialDropout): element e of row i is kept unless dropout_drops(key, (first_row + i) * width
  // + e % width, rate) (core/counter_hash.h), so the mask depends on the sample's position, not on
  // the rank. Forward and backward alike.
  virtual void dropout(const float* in, float* out, int64_t rows, int64_t row_size, int64_t steps,
                       float rate, uint64_t key, int64_t first_row) = 0;

  // Batch normalization over (rows, channels), channels last (Note [batch statistics]). Per
  // channel c, over the rows: host_sums[c] = sum of a, host_sums[channels + c] = sum of
  // a * (b - shift[c]), accumulated in double. shift: (channels) backend memory.
  virtual void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                            int64_t rows, int64_t channels) = 0;
  // y = x * coeffs[0][c] + coeffs[1][c], coeffs (2, channels).
  virtual void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                                  int64_t channels) = 0;
  // dx = dy * coeffs[0][c] + x * coeffs[1][c] + coeffs[2][c], coeffs (3, channels). dx may
  // alias dy.
  virtual void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                                   int64_t rows, int64_t channels) = 0;

  // Layer normalization of x (rows, cols) along its rows (Keras' LayerNormalization): y = gamma *
  // (x - mean) * inv_std + beta with each row's mean and inv_std = 1 / sqrt(biased var +
  // epsilon), which go to stats (rows, 2) for backward. Not `center`ed, RMS normalization (Keras'
  // RMSNormalization, PyTorch's nn.RMSNorm): the mean taken as 0, so inv_std = 1 / sqrt(mean(x^2)
  // + epsilon), and no beta (null).
  virtual void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                                  float* stats, int64_t rows, int64_t cols, float epsilon,
                                  bool center) = 0;
  // From that forward's x and stats: dx unless null (it may alias dy), and dgamma and dbeta (cols;
  // null when not centered) written, or added to when `accumulate`, each a sum over the rows in
  // their order.
  virtual void layer_norm_backward(const float* dy, const float* x, const float* gamma,
                                   const float* stats, float* dx, float* dgamma, float* dbeta,
                                   int64_t rows, int64_t cols, bool accumulate, bool center) = 0;

  // Embedding (nn/embedding.h): y (count, dim) = row ids[i] of table (vocabulary, dim), each id
  // a whole number in [0, vocabulary) (the data are checked); and the table's gradient, zeroed
  // unless `accumulate`, plus each dy row at its id's row.
  virtual void embedding_forward(const float* ids, const float* table, float* y, int64_t count,
                                 int64_t dim) = 0;
  virtual void embedding_backward(const float* ids, const float* dy, float* dtable, int64_t count,
                                  int64_t vocabulary, int64_t dim, bool accumulate) = 0;

  // dst[r * dst_row_stride + c] = src[r * src_row_stride + c * src_col_stride] for r < rows and
  // c < cols: one step of a sequence gathered from (batch, steps, width) rows or scattered back,
  // or a matrix transposed.
  virtual void copy_matrix(const float* src, int64_t src_row_stride, int64_t src_col_stride,
                           float* dst, int64_t dst_row_stride, int64_t rows, int64_t cols) = 0;
  // Attention's products (Note [self-attention]): for i < count, C_i (m, n) = alpha op(A_i)
  // op(B_i), or C_i plus that when `accumulate`. Each operand's item i is a row-major matrix at
  // data + i * item_stride with rows row_stride floats apart, read transposed where `transposed`
  // (A_i then stored (k, m), B_i (n, k)): one head's queries, keys or values within the rows of
  // whole steps, without copying them out.
  struct MatrixOperand {
    const float* data;
    int64_t row_stride, item_stride;
    bool transposed = false;
  };
  struct MatrixResult {
    float* data;
    int64_t row_stride, item_stride;
  };
  virtual void batched_matmul(int64_t count, int64_t m, int64_t n, int64_t k, float alpha,
                              const MatrixOperand& a, const MatrixOperand& b, const MatrixResult& c,
                              bool accumulate) = 0;
  // Scores (samples, rows, steps), each row a query's scores over a sample's steps, the query of
  // row r at step r % steps: those of steps whose key_mask (samples, steps; null: none) is 0
  // (Note [padding masks]) and, with `causal`, those of steps after the query's become `value`.
  virtual void mask_keys(float* scores, const float* key_mask, bool causal, int64_t samples,
                         int64_t rows, int64_t steps, float value) = 0;
  // y += x, elementwise (a bidirectional layer's input gradient: its two directions' sum).
  virtual void add_to(const float* x, float* y, size_t count) = 0;
  // average = momentum * average + (1 - momentum) * x, elementwise (Note [weight average]).
  virtual void moving_average(const float* x, float* average, size_t count, float momentum) = 0;
  // Row r of `to` (rows of `width`) becomes from's row r where mask[r] is 0 (Note [padding
  // masks]: a padding step carries the state before it on).
  virtual void carry_rows(const float* mask, const float* from, float* to, int64_t rows,
                          int64_t width) = 0;
  // Keras' Masking over rows of `width` (a sequence's steps): mask[r] is 0 where every value of
  // row r of x equals `value`, else 1; y is x with those rows zeroed. Backward: dx is dy with the
  // same rows zeroed.
  virtual void masking_forward(const float* x, float value, float* mask, float* y, int64_t rows,
                               int64_t width) = 0;
  virtual void masking_backward(const float* mask, const float* dy, float* dx, int64_t rows,
                                int64_t width) = 0;
  // One step of an LSTM over `batch` rows of `units` (backend/lstm_cell.h, each unit by
  // lstm_unit_forward and lstm_unit_backward; Note [recurrent steps]).
  virtual void lstm_cell_forward(const float* xp, const float* hu, const float* c_prev,
                                 float* gates, float* c, float* h, int64_t batch,
                                 int64_t units) = 0;
  virtual void lstm_cell_backward(const float* gates, const float* c_prev, const float* c,
                                  const float* dh, const float* dh_more, float* dc, float* dgates,
                                  int64_t batch, int64_t units) = 0;
  // One step of a GRU over `batch` rows of `units` (backend/gru_cell.h, each unit by
  // gru_unit_forward and gru_unit_backward; Note [recurrent steps]).
  virtual void gru_cell_forward(const float* xp, const float* hu, const float* h_prev, float* kept,
                                float* h, int64_t batch, int64_t units) = 0;
  virtual void gru_cell_backward(const float* kept, const float* h_prev, const float* dh,
                                 const float* dh_more, float* carry, float* dxp, float* dhu,
                                 int64_t batch, int64_t units) = 0;

  // False when any element is NaN or infinite.
  virtual bool all_finite(const float* data, size_t count) = 0;
  // The sum of the elements' squares, in double, in an order that depends only on `count`.
  virtual double squared_norm(const float* data, size_t count) = 0;

  // The bfloat16 wire format of core/bf16.h (round to nearest even), element by element.
  virtual void to_bf16(const float* src, uint16_t* dst, size_t count) = 0;
  virtual void from_bf16(const uint16_t* src, float* dst, size_t count) = 0;

  // PyTorch's update rules (torch.optim.SGD with dampening 0, torch.optim.Adam or AdamW; RMSprop
  // and the adaptive optimizers by PyTorch's or Keras' rule). With GradCheck::kFinite they return
  // false when a gradient they read was NaN or infinite (the update has used it all the same);
  // otherwise they return true. With kFiniteLater such a gradient makes the next take_nonfinite()
  // return true. They read each gradient multiplied by grad_scale (Note [gradient clipping]; 1
  // reads them as they are).
  virtual bool sgd_update(float* params, const float* grads, float* velocity, size_t count,
                          float lr, float grad_scale, const SgdHyper& hyper, GradCheck check) = 0;
  virtual bool adam_update(float* params, const float* grads, float* m, float* v, size_t count,
                           float lr, float grad_scale, int64_t step, const AdamHyper& hyper,
                           GradCheck check) = 0;
  // RMSprop's state: the square average, and where the hyperparameters ask for them the momentum
  // buffer (momentum > 0) and the mean gradient (centered); null otherwise.
  struct RmspropState {
    float* square_avg;
    float* momentum_buffer;
    float* grad_avg;
  };
  virtual bool rmsprop_update(float* params, const float* grads, RmspropState state, size_t count,
                              float lr, float grad_scale, const RmspropHyper& hyper,
                              GradCheck check) = 0;
  // Adagrad, Adamax, NAdam or Lion, one step (AdaptiveStep). first: Adagrad's sum, or the others'
  // first moment; second: Adamax's norm or NAdam's second moment (null for Adagrad and Lion).
  struct AdaptiveState {
    float* first;
    float* second;
  };
  virtual bool adaptive_update(float* params, const float* grads, AdaptiveState state, size_t count,
                               const AdaptiveStep& step, GradCheck check) = 0;

  // Note [deferred readback]: a device runs what the host queued while the host goes on, until
  // the host waits for a result. A training step that read its loss right after the loss kernel
  // and its non-finite verdict right after the update would leave the GPU idle twice per step
  // while the host queues the next work (W3 in TF32 on an H200 took 0.41 ms a step so, against
  // 0.33 for PyTorch replaying the whole step as a CUDA graph). So the step reads its loss sums
  // after queuing backward and update, and the verdict of its update a step later, and each read
  // waits only for the work it reads: 0.35 ms (benchmarks/results/gpu/compare_gpu_19e6366.md).
  // On the CPU both are ready at once.
  // The sums of the Readback::kLater losses since the last call.
  virtual LossStats take_loss_stats() = 0;
  // Whether an update with GradCheck::kFiniteLater since the last call read a NaN or infinity.
  virtual bool take_nonfinite() = 0;
};

// The precision of the dense layers' products: plain fp32, or operands rounded to TensorFloat-32
// (cuBLAS' tensor-op math, CUDA only; ~1e-3 relative error) or to bfloat16 (Note [bf16 products],
// backend/bf16_gemm.h); the products are summed in fp32 in every case.
enum class MatmulPrecision { kFloat32, kTf32, kBf16 };

// flush_denormals sets FTZ/DAZ for the calling thread (the one that trains): Adam's moments for
// inputs that are always zero (Fashion-MNIST's border pixels) decay into denormals, which cost
// the CPU ~100x per operation and slow a whole step by ~20%. threads: the dense layers' share of
// them (Note [threads per rank]). kTf32 is CUDA's: the CPU multiplies fp32 then.
std::unique_ptr<ComputeBackend> make_cpu_backend(
    bool flush_denormals = true, int threads = 1,
    MatmulPrecision precision = MatmulPrecision::kFloat32);

// Owns one backend allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(ComputeBackend& backend, size_t count)
      : backend_(&backend), data_(count ? backend.allocate(count) : nullptr), count_(count) {}
  DeviceBuffer(DeviceBuffer&& other) noexcept { *this = std::move(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    reset();
    backend_ = other.backend_;
    data_ = std::exchange(other.data_, nullptr);
    count_ = std::exchange(other.count_, 0);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  float* data() const { return data_; }
  size_t size() const { return count_; }
  std::span<float> span() const { return {data_, count_}; }

 private:
  void reset() {
    if (data_) backend_->release(data_);
    data_ = nullptr;
  }
  ComputeBackend* backend_ = nullptr;
  float* data_ = nullptr;
  size_t count_ = 0;
};

// `buffer` grown to hold `count` floats of `backend`'s memory, and its data: a layer's saved
// tensors and scratch, sized by the largest batch seen (what it held is not kept when it grows).
inline float* sized(ComputeBackend& backend, DeviceBuffer& buffer, int64_t count) {
  if (buffer.size() < static_cast<size_t>(count))
    buffer = DeviceBuffer(backend, static_cast<size_t>(count));
  return buffer.data();
}

}  // namespace ddp
