#include "backend/cpu_losses.h"

#include <algorithm>
#include <cmath>

#include "backend/cpu_softmax.h"

namespace ddp::cpu {
namespace {

int64_t argmax(const float* row, int64_t cols) { return std::max_element(row, row + cols) - row; }

// Row r's weight: 1 (multiplying by it changes no bit) when rows are not weighted.
float weight_of(const float* row_weight, int64_t r) { return row_weight ? row_weight[r] : 1.0f; }

}  // namespace

LossStats softmax_cross_entropy(const float* logits, const float* targets, const float* row_weight,
                                TargetKind kind, float* dlogits, float grad_scale, int64_t rows,
                                int64_t cols, std::vector<float>& exps) {
  LossStats stats;
  exps.resize(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    // Ignored (a padding position): a sparse target, or a one-hot row's first, below zero.
    if ((kind == TargetKind::kSparse ? targets[r] : targets[r * cols]) < 0) {
      if (dlogits) std::fill_n(dlogits + r * cols, cols, 0.0f);
      continue;
    }
    const float weight = weight_of(row_weight, r);
    const float scale = grad_scale * weight;
    const float* z = logits + r * cols;
    const ExpRow row = exp_minus_max(z, cols, exps.data());
    // log in float: the sum lies in [1, cols], where logf is within an ulp and libm's double log
    // took 2% of W1's step.
    const double log_sum = std::log(static_cast<float>(row.sum)) + row.max;
    const int64_t predicted = row.argmax;
    const auto inv_sum = static_cast<float>(1 / row.sum);
    if (kind == TargetKind::kSparse) {
      const auto label = static_cast<int64_t>(targets[r]);
      stats.loss_sum += weight * (log_sum - z[label]);
      stats.correct += predicted == label;
      if (dlogits) {
        float* d = dlogits + r * cols;
        for (int64_t c = 0; c < cols; ++c) d[c] = scale * exps[c] * inv_sum;
        d[label] -= scale;
      }
    } else {
      const float* t = targets + r * cols;
      double target_sum = 0;
      for (int64_t c = 0; c < cols; ++c) {
        stats.loss_sum += weight * t[c] * (log_sum - z[c]);
        target_sum += t[c];
      }
      stats.correct += predicted == argmax(t, cols);
      if (dlogits) {
        float* d = dlogits + r * cols;
        const auto scaled_sum = static_cast<float>(target_sum) * inv_sum;
        for (int64_t c = 0; c < cols; ++c) d[c] = scale * (exps[c] * scaled_sum - t[c]);
      }
    }
  }
  return stats;
}

LossStats mean_squared_error(const float* pred, const float* targets, const float* row_weight,
                             float* dpred, float grad_scale, int64_t rows, int64_t cols) {
  LossStats stats;
  for (int64_t r = 0; r < rows; ++r) {
    const float weight = weight_of(row_weight, r);
    const float scale = 2 * grad_scale / static_cast<float>(cols) * weight;
    const float* p = pred + r * cols;
    const float* t = targets + r * cols;
    double row = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double diff = static_cast<double>(p[c]) - t[c];
      row += diff * diff;
      if (dpred) dpred[r * cols + c] = scale * (p[c] - t[c]);
    }
    stats.loss_sum += weight * (row / static_cast<double>(cols));
    stats.correct += argmax(p, cols) == argmax(t, cols);
  }
  return stats;
}

// softplus(-z) = log(1 + e^-z) = max(-z, 0) + log1p(e^-|z|): no overflow for any z, and exact
// to rounding where e^-|z| is tiny (PyTorch's BCEWithLogitsLoss form).
LossStats sigmoid_cross_entropy(const float* logits, const float* targets, const float* row_weight,
                                const float* pos_weight, float* dlogits, float grad_scale,
                                int64_t rows, int64_t cols) {
  LossStats stats;
  for (int64_t r = 0; r < rows; ++r) {
    const float row_scale = weight_of(row_weight, r);
    const float scale = grad_scale / static_cast<float>(cols) * row_scale;
    const float* z = logits + r * cols;
    const float* t = targets + r * cols;
    double row = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double zc = z[c];
      const double weight = 1 + ((pos_weight ? pos_weight[c] : 1.0) - 1) * t[c];
      const double softplus = std::max(-zc, 0.0) + std::log1p(std::exp(-std::abs(zc)));
      row += (1 - t[c]) * zc + weight * softplus;
      if (dlogits) {
        const double sigmoid_of_minus_z = 1 / (1 + std::exp(zc));
        dlogits[r * cols + c] =
            static_cast<float>(scale * ((1 - t[c]) - weight * sigmoid_of_minus_z));
      }
      stats.correct += (zc > 0) == (t[c] > 0.5f);
    }
    stats.loss_sum += row_scale * (row / static_cast<double>(cols));
  }
  return stats;
}

double weight_penalty(const float* weights, float* grads, size_t count, float l1, float l2) {
  double absolute = 0, squares = 0;
  for (size_t i = 0; i < count; ++i) {
    const float w = weights[i];
    absolute += std::abs(w);
    squares += static_cast<double>(w) * w;
    if (grads) grads[i] += l1 * static_cast<float>((w > 0) - (w < 0)) + 2 * l2 * w;
  }
  return l1 * absolute + l2 * squares;
}

}  // namespace ddp::cpu
