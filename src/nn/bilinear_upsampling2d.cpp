#include "nn/bilinear_upsampling2d.h"

#include <algorithm>
#include <cmath>

namespace ddp {

BilinearUpSampling2D::BilinearUpSampling2D(const Shape& input, int64_t size_h, int64_t size_w)
    : height_(input[0]),
      width_(input[1]),
      channels_(input[2]),
      out_h_(input[0] * size_h),
      out_w_(input[1] * size_w),
      along_h_host_(interpolation(input[0], size_h)),
      along_w_host_(interpolation(input[1], size_w)) {}

std::vector<float> BilinearUpSampling2D::interpolation(int64_t in, int64_t size) {
  const int64_t out = in * size;
  std::vector<double> a(static_cast<size_t>(out * in));
  for (int64_t o = 0; o < out; ++o) {
    const double src =
        std::max((static_cast<double>(o) + 0.5) / static_cast<double>(size) - 0.5, 0.0);
    const auto lower = static_cast<int64_t>(std::floor(src));
    const int64_t upper = std::min(lower + 1, in - 1);
    const double f = src - static_cast<double>(lower);
    a[static_cast<size_t>(o * in + lower)] += 1 - f;
    a[static_cast<size_t>(o * in + upper)] += f;
  }
  return {a.begin(), a.end()};
}

void BilinearUpSampling2D::upload(ComputeBackend& backend) {
  if (along_h_.size() != 0) return;
  along_h_ = DeviceBuffer(backend, along_h_host_.size());
  along_w_ = DeviceBuffer(backend, along_w_host_.size());
  backend.copy_to_device(along_h_host_.data(), along_h_.data(), along_h_host_.size());
  backend.copy_to_device(along_w_host_.data(), along_w_.data(), along_w_host_.size());
}

void BilinearUpSampling2D::forward(ComputeBackend& backend, const float* x, float* y,
                                   int64_t batch) {
  upload(backend);
  const int64_t row = width_ * channels_;  // an input row, and a row of the first product
  float* between = sized(backend, rows_done_, batch * out_h_ * row);
  // Each sample's rows: (out_h, width * channels) = A_h (out_h, height) x (height, width *
  // channels).
  backend.batched_matmul(batch, out_h_, row, height_, 1.0f, {along_h_.data(), height_, 0},
                         {x, row, height_ * row}, {between, row, out_h_ * row}, false);
  // Each output row's columns: (out_w, channels) = A_w (out_w, width) x (width, channels).
  backend.batched_matmul(batch * out_h_, out_w_, channels_, width_, 1.0f,
                         {along_w_.data(), width_, 0}, {between, channels_, row},
                         {y, channels_, out_w_ * channels_}, false);
}

// No parameters: only dx, and nothing when no layer below needs it.
void BilinearUpSampling2D::backward(ComputeBackend& backend, const float* /*x*/, const float* /*y*/,
                                    float* dy, float* dx, int64_t batch, bool /*accumulate*/) {
  if (!dx) return;
  const int64_t row = width_ * channels_;
  float* between = sized(backend, rows_done_, batch * out_h_ * row);
  backend.batched_matmul(batch * out_h_, width_, channels_, out_w_, 1.0f,
                         {along_w_.data(), width_, 0, /*transposed=*/true},
                         {dy, channels_, out_w_ * channels_}, {between, channels_, row}, false);
  backend.batched_matmul(batch, height_, row, out_h_, 1.0f,
                         {along_h_.data(), height_, 0, /*transposed=*/true},
                         {between, row, out_h_ * row}, {dx, row, height_ * row}, false);
}

}  // namespace ddp
