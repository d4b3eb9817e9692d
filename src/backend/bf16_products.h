#pragma once
// Note [bf16 products]: with `training.bf16_matmul: true` a dense layer's three products (forward,
// input gradient, weight gradient) read their two operands rounded to bfloat16 (nearest even: 8
// bits of mantissa) and sum the exact products in fp32, as PyTorch's
// set_float32_matmul_precision("medium") does on CPUs with bf16 units; weights, activations,
// gradients, the all-reduce and the optimizer's state stay fp32, so only the products' inputs
// lose precision (~3 significant digits) and no loss scaling is needed (bf16 has fp32's range).
// Where oneDNN is built in and the CPU has bf16 units (AMX tiles on Intel Xeons since Sapphire
// Rapids, AVX512-BF16 on AMD Zen 4 and later), oneDNN's bf16 matmul multiplies; elsewhere the
// same bf16 values are widened back to fp32 and multiplied by the fp32 kernels (exact products
// too), so both agree up to the order of the fp32 sums: slower than plain fp32, for trying a
// config and for tests on any CPU. Convolutions of 8 or more channels multiply bf16 operands on
// oneDNN's bf16 convolutions where the CPU has bf16 units (Note [oneDNN convolutions]); few-channel
// ones (a first layer over pixels: slower in bf16 there) and every convolution on CPUs without bf16
// units stay fp32.
//
// A weight matrix is converted once a step: forward keeps its bf16 copy for the input gradient,
// which reads the weights as the forward did (backward updates a layer's weights only after its
// input gradient). The copies take half the weights' memory.
//
// Threads (Note [threads per rank]): each product is cut into pieces whose bounds depend only on
// its shape (forward: 256 output columns, which are 256 weight rows to convert; input gradient:
// 256 columns of dx; weight gradient: the blocks of rows handed to the update), and the rank's
// threads take shares of the pieces, each piece one oneDNN call on one thread. A piece's call is
// the same whichever thread makes it, so the bits do not depend on the team's size; every thread
// converts the weight rows it multiplies, while they are in its cache.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_team.h"

namespace ddp::cpu {

// fp32 -> bfloat16, nearest even (NaN stays NaN), as oneDNN and the CPU's bf16 units round.
// Branch-free, so that loops over it vectorize.
inline uint16_t to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;  // ties to even
  const uint32_t quiet_nan = (bits >> 16) | 0x40u;  // a NaN stays one, whatever its payload
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

inline float from_bf16(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// Whether this build and CPU multiply bf16 natively (oneDNN with AMX or AVX512-BF16).
bool native_bf16_products();
// What multiplies, for the backend's name.
std::string bf16_products_description();

// fp32 C (m, n) = op(A) op(B), as cpu::gemm: the fp32 kernels the widened operands go to where
// the CPU has no bf16 units.
using Fp32Gemm = void (*)(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                          const float* a, const float* b, float* c, bool accumulate);

// One rank's dense products with bf16 operands, and the bf16 copies of its weights.
class Bf16Products {
 public:
  // native: oneDNN multiplies (only where native_bf16_products()); else fp32_gemm does.
  explicit Bf16Products(Fp32Gemm fp32_gemm, bool native = native_bf16_products());
  ~Bf16Products();
  Bf16Products(const Bf16Products&) = delete;
  Bf16Products& operator=(const Bf16Products&) = delete;

  // y (batch, out) = x (batch, in) w^T, w (out, in); keeps w's copy for input_grad.
  void forward(ThreadTeam& team, const float* x, const float* w, float* y, int64_t batch,
               int64_t in, int64_t out);
  // dx (batch, in) = dy (batch, out) w, w as the last forward read it.
  void input_grad(ThreadTeam& team, const float* dy, const float* w, float* dx, int64_t batch,
                  int64_t in, int64_t out);
  // Rows [first_row, end_row) of dw (out, in) = dy^T x, handed to `consume` a block of rows at a
  // time (a few hundred KB, so that an update finds them in cache): consume(first, rows, block),
  // from several threads at once with a team (different rows). With `into` instead, the rows are
  // written (or added, with accumulate) there, rows `in` apart.
  using BlockConsumer = std::function<void(int64_t first, int64_t rows, const float* block)>;
  void weight_grad(ThreadTeam& team, const float* dy, const float* x, int64_t batch, int64_t in,
                   int64_t out, int64_t first_row, int64_t end_row, const BlockConsumer& consume);
  void weight_grad(ThreadTeam& team, const float* dy, const float* x, float* into, int64_t batch,
                   int64_t in, int64_t out, bool accumulate);

  // op(X) of a product: X's bf16 copy, row-major with rows `ld` apart, used as X^T if transposed.
  struct Operand {
    const uint16_t* data;
    int64_t ld;
    bool transposed;
  };
  // C (m, n), rows `ld` apart, = op(A) op(B) (+ C when accumulate).
  struct Product {
    Operand a, b;
    float* c;
    int64_t ldc, m, n, k;
    bool accumulate;
  };

 private:
  struct Lane;                                 // one thread's oneDNN stream, primitives and buffers
  void prepare_lanes(const ThreadTeam& team);  // one per thread
  // The batch-sized operand `from` (count floats) into to, the team sharing the work.
  const uint16_t* convert(ThreadTeam& team, const float* from, size_t count,
                          std::vector<uint16_t>& to);
  void multiply(Lane& lane, const Product& product);
  // Rows [first, first + rows) of the weight gradient (into, rows `ldc` apart): dy's columns
  // converted as a row-major block of dy^T on the lane, which oneDNN multiplies on its AMX kernels
  // (read through a transposed view it took a generic kernel: 4.0 against 1.4 ms for a 2048 x 2048
  // x 64 weight gradient).
  void weight_grad_rows(Lane& lane, const float* dy, const uint16_t* x16, float* into, int64_t ldc,
                        int64_t batch, int64_t in, int64_t out, int64_t first, int64_t rows,
                        bool accumulate);

  Fp32Gemm fp32_gemm_;
  bool native_;
  std::map<const float*, std::vector<uint16_t>> weights_;  // each weight matrix's copy
  std::vector<uint16_t> batch_operand_;                    // x, or dy (shared by the lanes)
  std::vector<std::unique_ptr<Lane>> lanes_;               // one per thread of the team
};

}  // namespace ddp::cpu
