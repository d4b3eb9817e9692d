#include "nn/torch_layout.h"

namespace ddp {
namespace {

bool reordered(const ParamEntry& entry) { return entry.hwc[0] != 0; }

// Copies between the (rows, h, w, c) and (rows, c, h, w) orders of the same values.
std::vector<float> transpose_hwc(const ParamEntry& entry, std::span<const float> in, bool to_chw) {
  const auto [rows, h, w, c] = entry.hwc;
  std::vector<float> out(in.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t ch = 0; ch < c; ++ch) {
          const auto hwc = static_cast<size_t>(((r * h + y) * w + x) * c + ch);
          const auto chw = static_cast<size_t>(((r * c + ch) * h + y) * w + x);
          if (to_chw)
            out[chw] = in[hwc];
          else
            out[hwc] = in[chw];
        }
  return out;
}

}  // namespace

// (rows, c, h, w), or (rows, c, w) for a tensor of one row (Conv1D's weight).
Shape torch_shape(const ParamEntry& entry) {
  if (!reordered(entry) || entry.shape.rank() < 3) return entry.shape;
  if (entry.shape.rank() == 3) return {entry.hwc[0], entry.hwc[3], entry.hwc[2]};
  return {entry.hwc[0], entry.hwc[3], entry.hwc[1], entry.hwc[2]};
}

std::vector<float> to_torch_layout(const ParamEntry& entry, std::span<const float> ours) {
  if (!reordered(entry)) return {ours.begin(), ours.end()};
  return transpose_hwc(entry, ours, /*to_chw=*/true);
}

std::vector<float> from_torch_layout(const ParamEntry& entry, std::span<const float> theirs) {
  if (!reordered(entry)) return {theirs.begin(), theirs.end()};
  return transpose_hwc(entry, theirs, /*to_chw=*/false);
}

}  // namespace ddp
