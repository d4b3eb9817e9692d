#include "backend/cpu_depthwise.h"

#include <cstring>
#include <vector>

#include "backend/team_shares.h"

namespace ddp::cpu {
namespace {

int64_t taps(const Window2d& win) { return win.kernel_h * win.kernel_w; }

// The kernels (channels, kernel_h, kernel_w) as (taps, channels).
std::vector<float> by_tap(const float* w, const Window2d& win) {
  std::vector<float> out(static_cast<size_t>(taps(win) * win.channels));
  for (int64_t c = 0; c < win.channels; ++c)
    for (int64_t t = 0; t < taps(win); ++t)
      out[static_cast<size_t>(t * win.channels + c)] = w[c * taps(win) + t];
  return out;
}

// f(input pixel, output pixel, tap) for every tap of every output pixel that falls on the image
// (not on padding), in the order of the batch, the output pixels and the taps.
template <typename F>
void for_each_tap(const Window2d& win, int64_t batch, F f) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t oh = 0; oh < win.out_h; ++oh)
      for (int64_t ow = 0; ow < win.out_w; ++ow) {
        const int64_t out = (b * win.out_h + oh) * win.out_w + ow;
        for (int64_t i = 0; i < win.kernel_h; ++i) {
          const int64_t ih = oh * win.stride_h - win.pad_top + i * win.dilation_h;
          if (ih < 0 || ih >= win.height) continue;
          for (int64_t j = 0; j < win.kernel_w; ++j) {
            const int64_t iw = ow * win.stride_w - win.pad_left + j * win.dilation_w;
            if (iw < 0 || iw >= win.width) continue;
            f((b * win.height + ih) * win.width + iw, out, i * win.kernel_w + j);
          }
        }
      }
}

void forward(const float* x, const float* w, float* y, int64_t batch, const Window2d& win) {
  const int64_t c = win.channels;
  const std::vector<float> kernel = by_tap(w, win);
  std::memset(y, 0, static_cast<size_t>(batch * win.out_pixels() * c) * sizeof(float));
  for_each_tap(win, batch, [&](int64_t in, int64_t out, int64_t tap) {
    const float* pixel = x + in * c;
    const float* k = kernel.data() + tap * c;
    float* sum = y + out * c;
    for (int64_t ch = 0; ch < c; ++ch) sum[ch] += pixel[ch] * k[ch];
  });
}

void input_grad(const float* dy, const float* w, float* dx, int64_t batch, const Window2d& win) {
  const int64_t c = win.channels;
  const std::vector<float> kernel = by_tap(w, win);
  std::memset(dx, 0, static_cast<size_t>(batch * win.height * win.width * c) * sizeof(float));
  for_each_tap(win, batch, [&](int64_t in, int64_t out, int64_t tap) {
    const float* grad = dy + out * c;
    const float* k = kernel.data() + tap * c;
    float* pixel = dx + in * c;
    for (int64_t ch = 0; ch < c; ++ch) pixel[ch] += grad[ch] * k[ch];
  });
}

void weight_grad(const float* x, const float* dy, float* dw, int64_t batch, const Window2d& win,
                 bool accumulate) {
  const int64_t c = win.channels;
  std::vector<float> sums(static_cast<size_t>(taps(win) * c));  // (taps, channels)
  for_each_tap(win, batch, [&](int64_t in, int64_t out, int64_t tap) {
    const float* pixel = x + in * c;
    const float* grad = dy + out * c;
    float* sum = sums.data() + tap * c;
    for (int64_t ch = 0; ch < c; ++ch) sum[ch] += grad[ch] * pixel[ch];
  });
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t t = 0; t < taps(win); ++t) {
      float& g = dw[ch * taps(win) + t];
      g = (accumulate ? g : 0.0f) + sums[static_cast<size_t>(t * c + ch)];
    }
}

int64_t image(const Window2d& win) { return win.height * win.width * win.channels; }
int64_t outputs(const Window2d& win) { return win.out_pixels() * win.channels; }

}  // namespace

void depthwise_forward(ThreadTeam& team, const float* x, const float* w, float* y, int64_t batch,
                       const Window2d& win) {
  by_rows(team, batch, image(win), [&](int64_t first, int64_t n) {
    forward(x + first * image(win), w, y + first * outputs(win), n, win);
  });
}

void depthwise_backward(ThreadTeam& team, const float* x, const float* w, const float* dy,
                        float* dx, float* dw, int64_t batch, const Window2d& win, bool accumulate) {
  if (dx)
    by_rows(team, batch, image(win), [&](int64_t first, int64_t n) {
      input_grad(dy + first * outputs(win), w, dx + first * image(win), n, win);
    });
  weight_grad(x, dy, dw, batch, win, accumulate);
}

}  // namespace ddp::cpu
