#include "backend/bf16_products.h"

#include <immintrin.h>

#include <algorithm>
#include <tuple>
#include <unordered_map>

#ifdef DDP_HAVE_DNNL
#include <dnnl.hpp>

#include "backend/onednn_threads.h"
#endif

#include "core/error.h"
#include "core/scratch.h"

namespace ddp::cpu {
namespace {

void convert_portably(const float* from, uint16_t* to, size_t count) {
  for (size_t i = 0; i < count; ++i) to[i] = to_bf16(from[i]);
}

#ifdef DDP_HAVE_DNNL
using dt = dnnl::memory::data_type;

bool has_isa(dnnl::cpu_isa wanted) {
  static const auto have = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  return (have & static_cast<unsigned>(wanted)) == static_cast<unsigned>(wanted);
}

// The conversion with the CPU's own instruction (nearest even, as to_bf16, but denormal inputs
// become zero), 32 floats at a time: the portable loop took a fifth of a W3 step to convert its
// weights. Only where the CPU has bf16 units, whatever the build's target.
__attribute__((target("avx512f,avx512bf16"))) void convert_natively(const float* from, uint16_t* to,
                                                                    size_t count) {
  size_t i = 0;
  for (; i + 32 <= count; i += 32) {
    const __m512bh pair =
        _mm512_cvtne2ps_pbh(_mm512_loadu_ps(from + i + 16), _mm512_loadu_ps(from + i));
    _mm512_storeu_si512(to + i, reinterpret_cast<__m512i>(pair));
  }
  convert_portably(from + i, to + i, count - i);
}

// A (rows, cols) operand of a product, stored with rows `ld` apart, or the transpose of one.
dnnl::memory::desc operand(int64_t rows, int64_t cols, int64_t ld, bool transposed, dt type) {
  return transposed ? dnnl::memory::desc({rows, cols}, type, {1, ld})
                    : dnnl::memory::desc({rows, cols}, type, {ld, 1});
}
#endif

// The weight gradient's rows per block handed to the update: ~256 KB of fp32, whole AMX tiles of
// rows (16).
int64_t block_rows(int64_t in) {
  constexpr int64_t kBlockFloats = 64 * 1024;
  return std::max<int64_t>(16, kBlockFloats / std::max<int64_t>(in, 1) / 16 * 16);
}

// The columns of a forward's or an input gradient's piece (Note [bf16 products]): a forward's 256
// weight rows (W3: 1 MB of bf16) stay in L2 from their conversion to their product. Pieces of 64
// columns cost W3 ~7% at one thread; whole products, with two, ran 1.6x slower (one run each:
// benchmarks/results/xeon/bf16_products_on_threads.md).
constexpr int64_t kPieceColumns = 256;

// Floats converted by one thread where the team shares a batch-sized operand.
constexpr int64_t kConvertPiece = 16 * 1024;

#ifdef DDP_HAVE_DNNL
// One thread's oneDNN matmuls: its stream, the primitives it has made and its scratch memory.
class OneDnnMatmul {
 public:
  void multiply(const Bf16Products::Product& p) {
    onednn_on_this_thread_only();
    try {
      const Key key{p.a.transposed, p.b.transposed, p.m,   p.n,         p.k,
                    p.a.ld,         p.b.ld,         p.ldc, p.accumulate};
      auto found = primitives_.find(key);
      if (found == primitives_.end()) found = primitives_.emplace(key, make(p)).first;
      Primitive& primitive = found->second;
      if (scratch_.size() < primitive.scratch_bytes) scratch_.resize(primitive.scratch_bytes);
      primitive.args.at(DNNL_ARG_SRC).set_data_handle(const_cast<uint16_t*>(p.a.data));
      primitive.args.at(DNNL_ARG_WEIGHTS).set_data_handle(const_cast<uint16_t*>(p.b.data));
      primitive.args.at(DNNL_ARG_DST).set_data_handle(p.c);
      primitive.args.at(DNNL_ARG_SCRATCHPAD).set_data_handle(scratch_.data());
      primitive.matmul.execute(stream_, primitive.args);
      stream_.wait();
    } catch (const dnnl::error& e) {
      throw RuntimeError("oneDNN bf16 matmul (" + std::to_string(p.m) + " x " +
                         std::to_string(p.n) + " x " + std::to_string(p.k) + "): " + e.what());
    }
  }

 private:
  // (transpose_a, transpose_b, m, n, k, lda, ldb, ldc, accumulate)
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;
  // A product's primitive and its arguments, whose memory objects are kept and pointed at each
  // call's operands (made anew, they and the argument map took a few microseconds a call, W2's
  // step ~16 calls).
  struct Primitive {
    dnnl::matmul matmul;
    size_t scratch_bytes;
    std::unordered_map<int, dnnl::memory> args;
  };

  Primitive make(const Bf16Products::Product& p) {
    const auto a_desc = operand(p.m, p.k, p.a.ld, p.a.transposed, dt::bf16);
    const auto b_desc = operand(p.k, p.n, p.b.ld, p.b.transposed, dt::bf16);
    const auto c_desc = operand(p.m, p.n, p.ldc, false, dt::f32);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (p.accumulate) {
      dnnl::post_ops sum;
      sum.append_sum(1.0f);
      attr.set_post_ops(sum);
    }
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_desc, b_desc, c_desc), attr,
                                          engine_);
    const dnnl::memory::desc scratch_desc = pd.scratchpad_desc();
    return {dnnl::matmul(pd),
            scratch_desc.get_size(),
            {{DNNL_ARG_SRC, dnnl::memory(a_desc, engine_, DNNL_MEMORY_NONE)},
             {DNNL_ARG_WEIGHTS, dnnl::memory(b_desc, engine_, DNNL_MEMORY_NONE)},
             {DNNL_ARG_DST, dnnl::memory(c_desc, engine_, DNNL_MEMORY_NONE)},
             {DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch_desc, engine_, DNNL_MEMORY_NONE)}}};
  }

  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  std::map<Key, Primitive> primitives_;
  // oneDNN's scratch memory (the weights repacked for the tiles), kept: allocated by the library
  // on each call, its pages were faulted in and zeroed every time.
  std::vector<char> scratch_;
};

void convert_rounding(bool native, const float* from, uint16_t* to, size_t count) {
  native ? convert_natively(from, to, count) : convert_portably(from, to, count);
}
#else
class OneDnnMatmul {
 public:
  void multiply(const Bf16Products::Product&) {
    throw RuntimeError("bf16 products: built without oneDNN");
  }
};

void convert_rounding(bool, const float* from, uint16_t* to, size_t count) {
  convert_portably(from, to, count);
}
#endif

}  // namespace

#ifdef DDP_HAVE_DNNL
bool native_bf16_products() { return has_isa(dnnl::cpu_isa::avx512_core_bf16); }

std::string bf16_products_description() {
  if (!native_bf16_products())
    return "bf16 operands widened for the fp32 kernels (this CPU has no bf16 units)";
  return has_isa(dnnl::cpu_isa::avx512_core_amx) ? "bf16 operands, oneDNN matmul on AMX tiles"
                                                 : "bf16 operands, oneDNN matmul on AVX512-BF16";
}
#else
bool native_bf16_products() { return false; }

std::string bf16_products_description() {
  return "bf16 operands widened for the fp32 kernels (built without oneDNN)";
}
#endif

struct Bf16Products::Lane {
  std::unique_ptr<OneDnnMatmul> onednn;  // null: the operands are widened for fp32_gemm
  std::vector<uint16_t> dy_t;            // a block's columns of dy, transposed
  std::vector<float> widened_a, widened_b, product, block;
};

Bf16Products::Bf16Products(Fp32Gemm fp32_gemm, bool native)
    : fp32_gemm_(fp32_gemm), native_(native) {
  if (native && !native_bf16_products())
    throw RuntimeError("bf16 products: this CPU has no bf16 units for oneDNN");
}

Bf16Products::~Bf16Products() = default;

void Bf16Products::prepare_lanes(const ThreadTeam& team) {
  while (static_cast<int>(lanes_.size()) < team.size()) {
    auto lane = std::make_unique<Lane>();
    if (native_) lane->onednn = std::make_unique<OneDnnMatmul>();
    lanes_.push_back(std::move(lane));
  }
}

const uint16_t* Bf16Products::convert(ThreadTeam& team, const float* from, size_t count,
                                      std::vector<uint16_t>& to) {
  if (to.size() < count) to.resize(count);
  team.run_pieces(static_cast<int64_t>(count), kConvertPiece, [&](int, int64_t first, int64_t n) {
    convert_rounding(native_, from + first, to.data() + first, static_cast<size_t>(n));
  });
  return to.data();
}

void Bf16Products::multiply(Lane& lane, const Product& p) {
  if (lane.onednn) return lane.onednn->multiply(p);
  // Each operand widened as it is stored (the transposed one too), for fp32_gemm's layouts.
  const auto widen = [](const Operand& x, int64_t rows, int64_t cols, std::vector<float>& buffer) {
    if (x.transposed) std::swap(rows, cols);  // as stored
    float* const out = scratch(buffer, static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = from_bf16(x.data[r * x.ld + c]);
    return out;
  };
  const float* wide_a = widen(p.a, p.m, p.k, lane.widened_a);
  const float* wide_b = widen(p.b, p.k, p.n, lane.widened_b);
  if (p.ldc == p.n)
    return fp32_gemm_(p.a.transposed, p.b.transposed, p.m, p.n, p.k, wide_a, wide_b, p.c,
                      p.accumulate);
  float* const product = scratch(lane.product, static_cast<size_t>(p.m * p.n));
  fp32_gemm_(p.a.transposed, p.b.transposed, p.m, p.n, p.k, wide_a, wide_b, product, false);
  for (int64_t r = 0; r < p.m; ++r)
    for (int64_t c = 0; c < p.n; ++c)
      p.c[r * p.ldc + c] = (p.accumulate ? p.c[r * p.ldc + c] : 0.0f) + product[r * p.n + c];
}

void Bf16Products::forward(ThreadTeam& team, const float* x, const float* w, float* y,
                           int64_t batch, int64_t in, int64_t out) {
  prepare_lanes(team);
  const uint16_t* x16 = convert(team, x, static_cast<size_t>(batch * in), batch_operand_);
  std::vector<uint16_t>& copy = weights_[w];
  if (copy.size() < static_cast<size_t>(out * in)) copy.resize(static_cast<size_t>(out * in));
  // A piece's weight rows are converted by the thread that multiplies them, in its cache.
  team.run_pieces(out, kPieceColumns, [&](int t, int64_t first, int64_t columns) {
    uint16_t* const rows = copy.data() + first * in;
    convert_rounding(native_, w + first * in, rows, static_cast<size_t>(columns * in));
    multiply(*lanes_[t], {.a = {x16, in, false},
                          .b = {rows, in, true},
                          .c = y + first,
                          .ldc = out,
                          .m = batch,
                          .n = columns,
                          .k = in,
                          .accumulate = false});
  });
}

void Bf16Products::input_grad(ThreadTeam& team, const float* dy, const float* w, float* dx,
                              int64_t batch, int64_t in, int64_t out) {
  prepare_lanes(team);
  const auto count = static_cast<size_t>(out * in);
  std::vector<uint16_t>& copy = weights_[w];
  const uint16_t* w16 = copy.size() >= count ? copy.data() : convert(team, w, count, copy);
  const uint16_t* dy16 = convert(team, dy, static_cast<size_t>(batch * out), batch_operand_);
  team.run_pieces(in, kPieceColumns, [&](int t, int64_t first, int64_t columns) {
    multiply(*lanes_[t], {.a = {dy16, out, false},
                          .b = {w16 + first, in, false},
                          .c = dx + first,
                          .ldc = in,
                          .m = batch,
                          .n = columns,
                          .k = out,
                          .accumulate = false});
  });
}

void Bf16Products::weight_grad_rows(Lane& lane, const float* dy, const uint16_t* x16, float* into,
                                    int64_t ldc, int64_t batch, int64_t in, int64_t out,
                                    int64_t first, int64_t rows, bool accumulate) {
  if (lane.dy_t.size() < static_cast<size_t>(rows * batch))
    lane.dy_t.resize(static_cast<size_t>(rows * batch));
  uint16_t* const dy_t = lane.dy_t.data();
  constexpr int64_t kBlock = 64;  // a block's rows and columns stay in L1 both ways
  for (int64_t c0 = 0; c0 < rows; c0 += kBlock)
    for (int64_t r = 0; r < batch; ++r)
      for (int64_t c = c0; c < std::min(rows, c0 + kBlock); ++c)
        dy_t[c * batch + r] = to_bf16(dy[r * out + first + c]);
  multiply(lane, {.a = {dy_t, batch, false},
                  .b = {x16, in, false},
                  .c = into,
                  .ldc = ldc,
                  .m = rows,
                  .n = in,
                  .k = batch,
                  .accumulate = accumulate});
}

void Bf16Products::weight_grad(ThreadTeam& team, const float* dy, const float* x, int64_t batch,
                               int64_t in, int64_t out, int64_t first_row, int64_t end_row,
                               const BlockConsumer& consume) {
  prepare_lanes(team);
  const uint16_t* x16 = convert(team, x, static_cast<size_t>(batch * in), batch_operand_);
  team.run_pieces(end_row - first_row, block_rows(in), [&](int t, int64_t first, int64_t rows) {
    Lane& lane = *lanes_[t];
    float* const block = scratch(lane.block, static_cast<size_t>(rows * in));
    weight_grad_rows(lane, dy, x16, block, in, batch, in, out, first_row + first, rows, false);
    consume(first_row + first, rows, block);
  });
}

void Bf16Products::weight_grad(ThreadTeam& team, const float* dy, const float* x, float* into,
                               int64_t batch, int64_t in, int64_t out, bool accumulate) {
  prepare_lanes(team);
  const uint16_t* x16 = convert(team, x, static_cast<size_t>(batch * in), batch_operand_);
  team.run_pieces(out, block_rows(in), [&](int t, int64_t first, int64_t rows) {
    weight_grad_rows(*lanes_[t], dy, x16, into + first * in, in, batch, in, out, first, rows,
                     accumulate);
  });
}

}  // namespace ddp::cpu
