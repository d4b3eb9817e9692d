#pragma once
// A 3x3 convolution and its gradients by definition, in double, for the kernels' tests, and the
// tolerance the convolutions' tests hold their float results to.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/window2d.h"

namespace ddp {

// A convolution's output and gradients.
struct ConvReference {
  std::vector<double> y, dx, dw, db;
};

// The convolution and, for the output gradient dz, its gradients, by definition (weights
// (filters, 3, 3, channels), NHWC).
inline ConvReference by_definition(const std::vector<float>& x, const std::vector<float>& w,
                                   const std::vector<float>& b, const std::vector<float>& dz,
                                   const Window2d& win, int64_t batch, int64_t filters) {
  const int64_t channels = win.channels;
  ConvReference r{std::vector<double>(dz.size()), std::vector<double>(x.size()),
                  std::vector<double>(w.size()), std::vector<double>(b.size())};
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t oh = 0; oh < win.out_h; ++oh)
      for (int64_t ow = 0; ow < win.out_w; ++ow)
        for (int64_t f = 0; f < filters; ++f) {
          const size_t out =
              static_cast<size_t>(((n * win.out_h + oh) * win.out_w + ow) * filters + f);
          double sum = b[static_cast<size_t>(f)];
          r.db[static_cast<size_t>(f)] += dz[out];
          for (int64_t i = 0; i < 3; ++i)
            for (int64_t j = 0; j < 3; ++j) {
              const int64_t h = oh - win.pad_top + i, v = ow - win.pad_left + j;
              if (h < 0 || h >= win.height || v < 0 || v >= win.width) continue;
              for (int64_t c = 0; c < channels; ++c) {
                const size_t xi =
                    static_cast<size_t>(((n * win.height + h) * win.width + v) * channels + c);
                const size_t wi = static_cast<size_t>(((f * 3 + i) * 3 + j) * channels + c);
                sum += static_cast<double>(w[wi]) * x[xi];
                r.dx[xi] += static_cast<double>(w[wi]) * dz[out];
                r.dw[wi] += static_cast<double>(x[xi]) * dz[out];
              }
            }
          r.y[out] = sum;
        }
  return r;
}

// Each of `got` within 1e-4 (relative, above 1) of its value by definition; `what` names them.
inline void expect_near_definition(const std::vector<float>& got, const std::vector<double>& want,
                                   const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::abs(want[i]))) << what << "[" << i << "]";
}

}  // namespace ddp
