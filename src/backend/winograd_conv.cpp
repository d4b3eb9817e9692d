#include "backend/winograd_conv.h"

#include <algorithm>

#include "core/simd.h"

namespace ddp::cpu {

#ifdef DDP_SIMD_TILES
namespace {

using simd::kLanes;
using simd::Vec;

constexpr int kPositions = 16;  // of a transformed 4x4 tile
// A register tile of the 16 products: kRows rows (tiles, or channels in the weight gradient) x
// kVectors vectors of columns, leaving registers for the column vectors and a broadcast value.
constexpr int kVectors = 2;
constexpr int kRows = std::min(8, (simd::kRegisters - 1 - kVectors) / kVectors);
// Tiles carried through the three steps (transform, product, transform back) together: their
// transformed inputs and products (16 x 48 tiles x 32 + 64 floats with AVX2, for W4) stay in the
// L2 cache between the steps.
constexpr int64_t kBlockTiles = 8 * kRows;

// How far apart the 16 positions of a block's rows of `width` floats, or of the transformed
// weights, lie: one cache line more than they take. Without the line, the positions of W4's
// blocks (6 and 12 KB apart) fell into one or two sets of the 8-way L1 cache, and each transform
// evicted what the last one wrote (the input transform alone took a fifth of the layer's time).
constexpr int64_t kSkew = 64 / sizeof(float);
constexpr int64_t position_stride(int64_t width) { return kBlockTiles * width + kSkew; }
constexpr int64_t weight_stride(int64_t channels, int64_t filters) {
  return channels * filters + kSkew;
}

// The scratch of a correlation or a weight gradient: a row of zeros (the padding's pixels),
// transformed weights, then a block's inputs (rows of `channels`) and products (rows of
// `filters`).
int64_t zero_row(int64_t channels, int64_t filters) { return std::max(channels, filters); }
size_t scratch_floats(int64_t channels, int64_t filters) {
  return static_cast<size_t>(zero_row(channels, filters) +
                             kPositions * (weight_stride(channels, filters) +
                                           position_stride(channels) + position_stride(filters)));
}

// A correlation with 3x3 windows at stride 1, computed in 2x2 tiles of output pixels.
struct Tiling {
  int64_t height, width, channels;  // the input, per sample
  int64_t pad_top, pad_left;
  int64_t out_h, out_w, filters;
  int64_t tiles_w() const { return (out_w + 1) / 2; }
  int64_t per_image() const { return (out_h + 1) / 2 * tiles_w(); }
};

Tiling forward_tiling(const Window2d& w, int64_t filters) {
  return {w.height, w.width, w.channels, w.pad_top, w.pad_left, w.out_h, w.out_w, filters};
}

// The input gradient's: the output gradient correlated with the flipped filters, padded so that
// each input pixel meets every output pixel whose window covered it.
Tiling input_grad_tiling(const Window2d& w, int64_t filters) {
  return {w.out_h, w.out_w, filters, 2 - w.pad_top, 2 - w.pad_left, w.height, w.width, w.channels};
}

// Tile `tile` of the batch: its sample and its first output row and column.
struct TileOrigin {
  int64_t sample, row, col;
};

TileOrigin origin_of(const Tiling& g, int64_t tile) {
  const int64_t r = tile % g.per_image();
  return {tile / g.per_image(), r / g.tiles_w() * 2, r % g.tiles_w() * 2};
}

// u = G g G^T for each filter's 3x3 taps g at each channel, as (16, channels, filters) for the
// forward correlation; with flip, of the filters rotated by 180 degrees as (16, filters,
// channels), the input gradient's (its channels are the filters).
void transform_weights(const float* w, int64_t filters, int64_t channels, bool flip, float* u) {
  for (int64_t f = 0; f < filters; ++f)
    for (int64_t c = 0; c < channels; ++c) {
      float g[3][3];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          g[i][j] = flip ? w[((f * 3 + 2 - i) * 3 + 2 - j) * channels + c]
                         : w[((f * 3 + i) * 3 + j) * channels + c];
      float a[4][3];
      for (int j = 0; j < 3; ++j) {
        a[0][j] = g[0][j];
        a[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
        a[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
        a[3][j] = g[2][j];
      }
      const int64_t at = flip ? f * channels + c : c * filters + f;
      for (int i = 0; i < 4; ++i) {
        const float r[4] = {a[i][0], 0.5f * (a[i][0] + a[i][1] + a[i][2]),
                            0.5f * (a[i][0] - a[i][1] + a[i][2]), a[i][2]};
        for (int j = 0; j < 4; ++j) u[(i * 4 + j) * weight_stride(channels, filters) + at] = r[j];
      }
    }
}

// dw (filters, 3, 3, channels) = G^T du G (added to dw when accumulate), du (16, channels,
// filters): the weight gradient back from the transformed space.
void weight_grads_from(const float* du, int64_t filters, int64_t channels, bool accumulate,
                       float* dw) {
  for (int64_t f = 0; f < filters; ++f)
    for (int64_t c = 0; c < channels; ++c) {
      float d[4][4];
      for (int p = 0; p < kPositions; ++p)
        d[p / 4][p % 4] = du[p * weight_stride(channels, filters) + c * filters + f];
      float b[3][4];
      for (int j = 0; j < 4; ++j) {
        b[0][j] = d[0][j] + 0.5f * (d[1][j] + d[2][j]);
        b[1][j] = 0.5f * (d[1][j] - d[2][j]);
        b[2][j] = 0.5f * (d[1][j] + d[2][j]) + d[3][j];
      }
      for (int i = 0; i < 3; ++i) {
        const float g[3] = {b[i][0] + 0.5f * (b[i][1] + b[i][2]), 0.5f * (b[i][1] - b[i][2]),
                            0.5f * (b[i][1] + b[i][2]) + b[i][3]};
        for (int j = 0; j < 3; ++j) {
          float& out = dw[((f * 3 + i) * 3 + j) * channels + c];
          out = accumulate ? out + g[j] : g[j];
        }
      }
    }
}

// The N x N pixels of a tile whose first pixel is (row, col) of `image` (height x width pixels
// of `channels` floats): zeros (a row of at least `channels` zeros) where it lies outside.
template <int N>
void tile_pixels(const float* image, int64_t height, int64_t width, int64_t channels, int64_t row,
                 int64_t col, const float* zeros, const float* at[N][N]) {
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < N; ++j) {
      const int64_t h = row + i, w = col + j;
      const bool inside = h >= 0 && h < height && w >= 0 && w < width;
      at[i][j] = inside ? image + (h * width + w) * channels : zeros;
    }
}

// Tiles are read this many ahead of the one being transformed.
constexpr int64_t kAhead = 2;

// Fills `at` with the pixels of tile first + t of a block of `count` through locate(tile, at),
// after reading those of tile first + t + kAhead into the cache: the layers' inputs and output
// gradients (1.6-3.2 MB for W4) come from L3 or memory, and the loads of these scattered tiles
// stalled the transforms without the hint.
template <int N, typename Locate>
void next_tile(Locate&& locate, int64_t first, int64_t t, int64_t count, int64_t channels,
               const float* at[N][N]) {
  if (t + kAhead < count) {
    locate(first + t + kAhead, at);
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < N; ++j)
        for (int64_t c = 0; c < channels; c += 64 / sizeof(float)) __builtin_prefetch(at[i][j] + c);
  }
  locate(first + t, at);
}

// The 4x4 input pixels under output tile `tile` of the batch.
void input_tile(const float* x, const Tiling& g, int64_t tile, const float* zeros,
                const float* at[4][4]) {
  const TileOrigin o = origin_of(g, tile);
  tile_pixels<4>(x + o.sample * g.height * g.width * g.channels, g.height, g.width, g.channels,
                 o.row - g.pad_top, o.col - g.pad_left, zeros, at);
}

// The 2x2 output pixels of tile `tile` of the batch in dz (batch, out_h, out_w, filters).
void output_tile(const float* dz, const Tiling& g, int64_t tile, const float* zeros,
                 const float* at[2][2]) {
  const TileOrigin o = origin_of(g, tile);
  tile_pixels<2>(dz + o.sample * g.out_h * g.out_w * g.filters, g.out_h, g.out_w, g.filters, o.row,
                 o.col, zeros, at);
}

// The block's transformed inputs B^T d B, (16, kBlockTiles, channels): tiles [first, first +
// count) of the batch, then zeros up to `rows`. zeros: a row of g.channels zeros.
void transform_inputs(const float* x, const Tiling& g, int64_t first, int64_t count, int64_t rows,
                      const float* zeros, float* v) {
  const int64_t stride = position_stride(g.channels);
  for (int64_t t = 0; t < rows; ++t) {
    float* out = v + t * g.channels;
    if (t >= count) {
      for (int p = 0; p < kPositions; ++p) std::fill_n(out + p * stride, g.channels, 0.0f);
      continue;
    }
    const float* at[4][4];
    next_tile<4>([&](int64_t tile, const float* p[4][4]) { input_tile(x, g, tile, zeros, p); },
                 first, t, count, g.channels, at);
    for (int64_t c = 0; c < g.channels; c += kLanes) {
      Vec e[4][4];  // B^T d, a column at a time
      for (int j = 0; j < 4; ++j) {
        const Vec d0 = simd::load(at[0][j] + c), d1 = simd::load(at[1][j] + c);
        const Vec d2 = simd::load(at[2][j] + c), d3 = simd::load(at[3][j] + c);
        e[0][j] = d0 - d2;
        e[1][j] = d1 + d2;
        e[2][j] = d2 - d1;
        e[3][j] = d1 - d3;
      }
      for (int i = 0; i < 4; ++i) {
        float* row = out + i * 4 * stride + c;
        simd::store(row, e[i][0] - e[i][2]);
        simd::store(row + stride, e[i][1] + e[i][2]);
        simd::store(row + 2 * stride, e[i][2] - e[i][1]);
        simd::store(row + 3 * stride, e[i][1] - e[i][3]);
      }
    }
  }
}

// y's tiles [first, first + count) from the block's products m (16, kBlockTiles, filters):
// A^T m A, plus the bias (none when null), ReLU'd when relu; pixels past the output's edge are
// dropped.
void transform_outputs(const float* m, const Tiling& g, int64_t first, int64_t count,
                       const float* bias, bool relu, float* y) {
  const int64_t stride = position_stride(g.filters);
  for (int64_t t = 0; t < count; ++t) {
    const TileOrigin o = origin_of(g, first + t);
    const int64_t rows = std::min<int64_t>(2, g.out_h - o.row);
    const int64_t cols = std::min<int64_t>(2, g.out_w - o.col);
    float* out = y + ((o.sample * g.out_h + o.row) * g.out_w + o.col) * g.filters;
    for (int64_t f = 0; f < g.filters; f += kLanes) {
      const float* in = m + t * g.filters + f;
      Vec s[2][4];
      for (int j = 0; j < 4; ++j) {
        const Vec m0 = simd::load(in + j * stride);
        const Vec m1 = simd::load(in + (4 + j) * stride);
        const Vec m2 = simd::load(in + (8 + j) * stride);
        const Vec m3 = simd::load(in + (12 + j) * stride);
        s[0][j] = m0 + m1 + m2;
        s[1][j] = m1 - m2 - m3;
      }
      const Vec b = bias ? simd::load(bias + f) : simd::zero();
      for (int64_t i = 0; i < rows; ++i) {
        const Vec pixel[2] = {s[i][0] + s[i][1] + s[i][2] + b, s[i][1] - s[i][2] - s[i][3] + b};
        for (int64_t j = 0; j < cols; ++j)
          simd::store(out + (i * g.out_w + j) * g.filters + f,
                      relu ? simd::max(pixel[j], simd::zero()) : pixel[j]);
      }
    }
  }
}

// The block's transformed output gradients A dz A^T, (16, kBlockTiles, filters), of tiles
// [first, first + count), zero past the output's edge (zeros: a row of g.filters zeros); adds
// each tile's sum of dz (position 5 of the transform) to db.
void transform_output_grads(const float* dz, const Tiling& g, int64_t first, int64_t count,
                            const float* zeros, float* dm, float* db) {
  const int64_t stride = position_stride(g.filters);
  for (int64_t t = 0; t < count; ++t) {
    const float* at[2][2];
    next_tile<2>([&](int64_t tile, const float* p[2][2]) { output_tile(dz, g, tile, zeros, p); },
                 first, t, count, g.filters, at);
    for (int64_t f = 0; f < g.filters; f += kLanes) {
      Vec d[2][2];
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) d[i][j] = simd::load(at[i][j] + f);
      const Vec zero = simd::zero();
      const Vec e[4][2] = {{d[0][0], d[0][1]},
                           {d[0][0] + d[1][0], d[0][1] + d[1][1]},
                           {d[0][0] - d[1][0], d[0][1] - d[1][1]},
                           {zero - d[1][0], zero - d[1][1]}};
      for (int i = 0; i < 4; ++i) {
        float* row = dm + i * 4 * stride + t * g.filters + f;
        simd::store(row, e[i][0]);
        simd::store(row + stride, e[i][0] + e[i][1]);
        simd::store(row + 2 * stride, e[i][0] - e[i][1]);
        simd::store(row + 3 * stride, zero - e[i][1]);
      }
      simd::store(db + f, simd::load(db + f) + (e[1][0] + e[1][1]));
    }
  }
}

// out[r][0, Vectors * kLanes) = (out when add, else 0) + the sum over k < depth of
// a[r * a_row + k * a_step] * b[k * b_stride + 0, Vectors * kLanes), for r < Rows.
template <int Rows, int Vectors>
void tile_product(const float* a, int64_t a_row, int64_t a_step, const float* b, int64_t b_stride,
                  int64_t depth, float* out, int64_t out_stride, bool add) {
  Vec acc[Rows][Vectors];
  for (int r = 0; r < Rows; ++r)
    for (int v = 0; v < Vectors; ++v) acc[r][v] = simd::zero();
  for (int64_t k = 0; k < depth; ++k) {
    Vec bv[Vectors];
    for (int v = 0; v < Vectors; ++v) bv[v] = simd::load(b + k * b_stride + v * kLanes);
    const float* ak = a + k * a_step;
    for (int r = 0; r < Rows; ++r) {
      const Vec x = simd::broadcast(ak[r * a_row]);
      for (int v = 0; v < Vectors; ++v) acc[r][v] = simd::fma(x, bv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < Rows; ++r)
    for (int v = 0; v < Vectors; ++v) {
      float* p = out + r * out_stride + v * kLanes;
      simd::store(p, add ? simd::load(p) + acc[r][v] : acc[r][v]);
    }
}

// out (rows x cols, row stride out_stride) = (out when add) + A (rows x depth) x B (depth x cols,
// row stride b_stride), A's element (r, k) at a[r * a_row + k * a_step]; cols: whole vectors.
void product(const float* a, int64_t a_row, int64_t a_step, const float* b, int64_t b_stride,
             int64_t rows, int64_t depth, int64_t cols, float* out, int64_t out_stride, bool add) {
  for (int64_t c0 = 0; c0 < cols; c0 += kVectors * kLanes) {
    const int vectors = static_cast<int>(std::min<int64_t>(kVectors, (cols - c0) / kLanes));
    for (int64_t r0 = 0; r0 < rows; r0 += kRows) {
      const int n = static_cast<int>(std::min<int64_t>(kRows, rows - r0));
      simd::with_count<kRows>(n, [&]<int Rows>() {
        simd::with_count<kVectors>(vectors, [&]<int Vectors>() {
          tile_product<Rows, Vectors>(a + r0 * a_row, a_row, a_step, b + c0, b_stride, depth,
                                      out + r0 * out_stride + c0, out_stride, add);
        });
      });
    }
  }
}

// y = the correlation g of x with the transformed weights u (16, channels, filters), plus the
// bias (none when null), ReLU'd when relu. v and m: the block's transformed inputs and products.
void correlate(const float* x, const float* u, const Tiling& g, int64_t batch, const float* bias,
               bool relu, float* y, const float* zeros, float* v, float* m) {
  const int64_t tiles = batch * g.per_image();
  for (int64_t first = 0; first < tiles; first += kBlockTiles) {
    const int64_t count = std::min(kBlockTiles, tiles - first);
    const int64_t rows = (count + kRows - 1) / kRows * kRows;
    transform_inputs(x, g, first, count, rows, zeros, v);
    for (int p = 0; p < kPositions; ++p)
      product(v + p * position_stride(g.channels), g.channels, 1,
              u + p * weight_stride(g.channels, g.filters), g.filters, rows, g.channels, g.filters,
              m + p * position_stride(g.filters), g.filters, false);
    transform_outputs(m, g, first, count, bias, relu, y);
  }
}

}  // namespace

bool winograd_conv_applies(const Window2d& w, int64_t filters) {
  return w.kernel_h == 3 && w.kernel_w == 3 && w.stride_h == 1 && w.stride_w == 1 &&
         w.channels > 0 && w.channels % kLanes == 0 && filters > 0 && filters % kLanes == 0 &&
         w.out_h > 0 && w.out_w > 0;
}

void winograd_conv_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                           const Window2d& win, int64_t filters, bool relu,
                           std::vector<float>& scratch) {
  const int64_t channels = win.channels;
  scratch.resize(scratch_floats(channels, filters));
  const float* zeros = scratch.data();
  std::fill_n(scratch.data(), zero_row(channels, filters), 0.0f);
  float* u = scratch.data() + zero_row(channels, filters);
  float* v = u + kPositions * weight_stride(channels, filters);
  transform_weights(w, filters, channels, false, u);
  correlate(x, u, forward_tiling(win, filters), batch, b, relu, y, zeros, v,
            v + kPositions * position_stride(channels));
}

void winograd_conv_backward(const float* x, const float* w, const float* dz, float* dx, float* dw,
                            float* db, int64_t batch, const Window2d& win, int64_t filters,
                            bool accumulate, std::vector<float>& scratch) {
  const int64_t channels = win.channels;
  if (!accumulate) std::fill(db, db + filters, 0.0f);
  // The transformed weight gradient (later the input gradient's transformed weights), then the
  // block's transformed inputs and output gradients.
  scratch.assign(scratch_floats(channels, filters), 0.0f);
  const float* zeros = scratch.data();
  float* du = scratch.data() + zero_row(channels, filters);
  float* v = du + kPositions * weight_stride(channels, filters);
  float* dm = v + kPositions * position_stride(channels);
  const Tiling g = forward_tiling(win, filters);
  const int64_t tiles = batch * g.per_image();
  for (int64_t first = 0; first < tiles; first += kBlockTiles) {
    const int64_t count = std::min(kBlockTiles, tiles - first);
    transform_inputs(x, g, first, count, count, zeros, v);
    transform_output_grads(dz, g, first, count, zeros, dm, db);
    // du (channels x filters) += v^T (channels x tiles) x dm (tiles x filters), per position.
    for (int p = 0; p < kPositions; ++p)
      product(v + p * position_stride(channels), 1, channels, dm + p * position_stride(filters),
              filters, channels, count, filters, du + p * weight_stride(channels, filters), filters,
              true);
  }
  weight_grads_from(du, filters, channels, accumulate, dw);
  if (!dx) return;
  transform_weights(w, filters, channels, true, du);
  // The input gradient's blocks: rows of `filters` inputs, then rows of `channels` products.
  correlate(dz, du, input_grad_tiling(win, filters), batch, nullptr, false, dx, zeros, v,
            v + kPositions * position_stride(filters));
}

#else

bool winograd_conv_applies(const Window2d&, int64_t) { return false; }
void winograd_conv_forward(const float*, const float*, const float*, float*, int64_t,
                           const Window2d&, int64_t, bool, std::vector<float>&) {}
void winograd_conv_backward(const float*, const float*, const float*, float*, float*, float*,
                            int64_t, const Window2d&, int64_t, bool, std::vector<float>&) {}

#endif

}  // namespace ddp::cpu
