#include "backend/bf16_products.h"

#include <immintrin.h>

#include <algorithm>
#include <tuple>

#ifdef DDP_HAVE_DNNL
#include <dnnl.hpp>

// libgomp's entry point, as in onednn_conv.cpp: oneDNN runs on the calling thread only.
extern "C" void omp_set_num_threads(int threads);
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

}  // namespace

#ifdef DDP_HAVE_DNNL
bool native_bf16_products() { return has_isa(dnnl::cpu_isa::avx512_core_bf16); }

std::string bf16_products_description() {
  if (!native_bf16_products())
    return "bf16 operands widened for the fp32 kernels (this CPU has no bf16 units)";
  return has_isa(dnnl::cpu_isa::avx512_core_amx) ? "bf16 operands, oneDNN matmul on AMX tiles"
                                                 : "bf16 operands, oneDNN matmul on AVX512-BF16";
}

struct Bf16Products::Native {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // (transpose_a, transpose_b, m, n, k, lda, ldb, accumulate)
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, bool>;
  struct Primitive {
    dnnl::matmul matmul;
    size_t scratch_bytes;
  };
  std::map<Key, Primitive> primitives;
  // oneDNN's scratch memory (the weights repacked for the tiles: megabytes), kept: allocated by
  // the library on each call, its pages were faulted in and zeroed every time.
  std::vector<char> scratch;

  void multiply(const Operand& a, const Operand& b, float* c, int64_t m, int64_t n, int64_t k,
                bool accumulate) {
    thread_local const bool one_thread = (omp_set_num_threads(1), true);
    (void)one_thread;
    const auto a_desc = operand(m, k, a.ld, a.transposed, dt::bf16);
    const auto b_desc = operand(k, n, b.ld, b.transposed, dt::bf16);
    const auto c_desc = operand(m, n, n, false, dt::f32);
    try {
      const Key key{a.transposed, b.transposed, m, n, k, a.ld, b.ld, accumulate};
      auto found = primitives.find(key);
      if (found == primitives.end()) {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        if (accumulate) {
          dnnl::post_ops sum;
          sum.append_sum(1.0f);
          attr.set_post_ops(sum);
        }
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_desc, b_desc, c_desc), attr,
                                              engine);
        found =
            primitives.emplace(key, Primitive{dnnl::matmul(pd), pd.scratchpad_desc().get_size()})
                .first;
      }
      const Primitive& primitive = found->second;
      if (scratch.size() < primitive.scratch_bytes) scratch.resize(primitive.scratch_bytes);
      dnnl::memory scratchpad({{static_cast<int64_t>(primitive.scratch_bytes)}, dt::u8, {1}},
                              engine, scratch.data());
      dnnl::memory src(a_desc, engine, const_cast<uint16_t*>(a.data));
      dnnl::memory weights(b_desc, engine, const_cast<uint16_t*>(b.data));
      dnnl::memory dst(c_desc, engine, c);
      primitive.matmul.execute(stream, {{DNNL_ARG_SRC, src},
                                        {DNNL_ARG_WEIGHTS, weights},
                                        {DNNL_ARG_DST, dst},
                                        {DNNL_ARG_SCRATCHPAD, scratchpad}});
      stream.wait();
    } catch (const dnnl::error& e) {
      throw RuntimeError("oneDNN bf16 matmul (" + std::to_string(m) + " x " + std::to_string(n) +
                         " x " + std::to_string(k) + "): " + e.what());
    }
  }
};
#else
bool native_bf16_products() { return false; }

std::string bf16_products_description() {
  return "bf16 operands widened for the fp32 kernels (built without oneDNN)";
}

struct Bf16Products::Native {
  void multiply(const Operand&, const Operand&, float*, int64_t, int64_t, int64_t, bool) {
    throw RuntimeError("bf16 products: built without oneDNN");
  }
};
#endif

Bf16Products::Bf16Products(Fp32Gemm fp32_gemm, bool native) : fp32_gemm_(fp32_gemm) {
  if (native && !native_bf16_products())
    throw RuntimeError("bf16 products: this CPU has no bf16 units for oneDNN");
  if (native) native_ = std::make_unique<Native>();
}

Bf16Products::~Bf16Products() = default;

const uint16_t* Bf16Products::convert(const float* from, size_t count, std::vector<uint16_t>& to) {
  if (to.size() < count) to.resize(count);
#ifdef DDP_HAVE_DNNL
  if (native_) {
    convert_natively(from, to.data(), count);
    return to.data();
  }
#endif
  convert_portably(from, to.data(), count);
  return to.data();
}

void Bf16Products::multiply(const Operand& a, const Operand& b, float* c, int64_t m, int64_t n,
                            int64_t k, bool accumulate) {
  if (native_) return native_->multiply(a, b, c, m, n, k, accumulate);
  // Each operand widened as it is stored (the transposed one too), for fp32_gemm's layouts.
  const auto widen = [](const Operand& x, int64_t rows, int64_t cols, std::vector<float>& buffer) {
    if (x.transposed) std::swap(rows, cols);  // as stored
    float* const out = scratch(buffer, static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = from_bf16(x.data[r * x.ld + c]);
    return out;
  };
  const float* wide_a = widen(a, m, k, widened_a_);
  const float* wide_b = widen(b, k, n, widened_b_);
  fp32_gemm_(a.transposed, b.transposed, m, n, k, wide_a, wide_b, c, accumulate);
}

void Bf16Products::forward(const float* x, const float* w, float* y, int64_t batch, int64_t in,
                           int64_t out) {
  const uint16_t* x16 = convert(x, static_cast<size_t>(batch * in), batch_a_);
  const uint16_t* w16 = convert(w, static_cast<size_t>(out * in), weights_[w]);
  multiply({x16, in, false}, {w16, in, true}, y, batch, out, in, false);
}

void Bf16Products::input_grad(const float* dy, const float* w, float* dx, int64_t batch, int64_t in,
                              int64_t out) {
  const auto count = static_cast<size_t>(out * in);
  std::vector<uint16_t>& copy = weights_[w];
  const uint16_t* w16 = copy.size() >= count ? copy.data() : convert(w, count, copy);
  const uint16_t* dy16 = convert(dy, static_cast<size_t>(batch * out), batch_a_);
  multiply({dy16, out, false}, {w16, in, false}, dx, batch, in, out, false);
}

const uint16_t* Bf16Products::convert_transposed(const float* from, int64_t rows, int64_t cols,
                                                 std::vector<uint16_t>& to) {
  const auto count = static_cast<size_t>(rows * cols);
  if (to.size() < count) to.resize(count);
  constexpr int64_t kBlock = 64;  // a block's rows and columns stay in L1 both ways
  for (int64_t c0 = 0; c0 < cols; c0 += kBlock)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < std::min(cols, c0 + kBlock); ++c)
        to[static_cast<size_t>(c * rows + r)] = to_bf16(from[r * cols + c]);
  return to.data();
}

void Bf16Products::weight_grad(const float* dy, const float* x, int64_t batch, int64_t in,
                               int64_t out, int64_t first_row, int64_t end_row,
                               const BlockConsumer& consume) {
  const uint16_t* dy_t = convert_transposed(dy, batch, out, batch_a_);
  const uint16_t* x16 = convert(x, static_cast<size_t>(batch * in), batch_b_);
  const int64_t step = block_rows(in);
  float* const block =
      scratch(block_, static_cast<size_t>(std::min(step, end_row - first_row) * in));
  for (int64_t first = first_row; first < end_row; first += step) {
    const int64_t rows = std::min(step, end_row - first);
    // Rows [first, first + rows) of dy^T: (rows, batch).
    multiply({dy_t + first * batch, batch, false}, {x16, in, false}, block, rows, in, batch, false);
    consume(first, rows, block);
  }
}

void Bf16Products::weight_grad(const float* dy, const float* x, float* into, int64_t batch,
                               int64_t in, int64_t out, bool accumulate) {
  const uint16_t* dy_t = convert_transposed(dy, batch, out, batch_a_);
  const uint16_t* x16 = convert(x, static_cast<size_t>(batch * in), batch_b_);
  multiply({dy_t, batch, false}, {x16, in, false}, into, out, in, batch, accumulate);
}

}  // namespace ddp::cpu
