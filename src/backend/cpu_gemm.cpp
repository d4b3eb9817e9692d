#include "backend/cpu_gemm.h"

#include <Eigen/Core>
#ifdef DDP_HAVE_CBLAS
#include <cblas.h>
#include <dlfcn.h>
#endif
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

#include "backend/openblas_kernels.h"
#include "backend/tiled_gemm.h"
#include "core/error.h"

namespace ddp::cpu {
namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMatrixMap = Eigen::Map<const RowMatrix, Eigen::Unaligned>;
using MutableMatrixMap = Eigen::Map<RowMatrix, Eigen::Unaligned>;

#ifdef DDP_HAVE_CBLAS
// Chosen once, before the library is loaded (which is when it picks its kernels).
const std::string& openblas_kernels() {
  static const std::string chosen = choose_openblas_kernels();
  return chosen;
}

using SgemmFn = decltype(&cblas_sgemm);

SgemmFn openblas_sgemm() {
  static const SgemmFn sgemm = [] {
    openblas_kernels();
    void* library = dlopen(DDP_OPENBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
    void* symbol = library ? dlsym(library, "cblas_sgemm") : nullptr;
    if (!symbol)
      throw RuntimeError(std::string("cannot load cblas_sgemm from " DDP_OPENBLAS_PATH ": ") +
                         dlerror());
    return reinterpret_cast<SgemmFn>(symbol);
  }();
  return sgemm;
}
#endif

#ifdef DDP_HAVE_CBLAS
bool blas_available() { return true; }
// C (m, n) = op(A) op(B) through OpenBLAS, all row-major and dense.
void blas_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
               const float* b, float* c, bool accumulate) {
  // Debian's serial OpenBLAS shares its packing buffers between calling threads: two calls at once
  // gave wrong products (threads' input gradients that changed from run to run). The team never
  // splits an OpenBLAS product (shared_by_team); the lock keeps any other concurrent call correct.
  static std::mutex one_call_at_a_time;
  const std::lock_guard<std::mutex> lock(one_call_at_a_time);
  openblas_sgemm()(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
                   transpose_b ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                   static_cast<int>(n), static_cast<int>(k), 1.0f, a,
                   static_cast<int>(transpose_a ? m : k), b, static_cast<int>(transpose_b ? k : n),
                   accumulate ? 1.0f : 0.0f, c, static_cast<int>(n));
}
#else
bool blas_available() { return false; }
void blas_gemm(bool, bool, int64_t, int64_t, int64_t, const float*, const float*, float*, bool) {
  throw std::logic_error("blas_gemm: built without OpenBLAS");
}
#endif

}  // namespace

bool skinny_to_blas() {
  static const bool forced = [] {
    const char* choice = std::getenv("DDP_GEMM");
    return choice && std::string(choice) == "blas";
  }();
  return forced;
}

bool skinny_and_tiled(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k) {
  return tiled_gemm_available() && !is_small_product(m, n, k) &&
         is_skinny_product(transpose_a, transpose_b, m, n, k) && !skinny_to_blas();
}

// The tiled kernels neither pay BLAS's per-call overhead nor repack the weights on every call.
void fp32_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
               const float* b, float* c, bool accumulate) {
  const bool small = is_small_product(m, n, k);
  if (tiled_kernels_take(transpose_a, transpose_b, m, n, k) && (small || !skinny_to_blas())) {
    tiled_gemm(transpose_a, transpose_b, m, n, k, a, b, c, accumulate);
    return;
  }
  if (!small && blas_available()) {
    blas_gemm(transpose_a, transpose_b, m, n, k, a, b, c, accumulate);
    return;
  }
  MutableMatrixMap C(c, m, n);
  auto assign = [&C, accumulate](const auto& product) {
    if (accumulate) {
      C.noalias() += product;
    } else {
      C.noalias() = product;
    }
  };
  if (!transpose_a && !transpose_b) {
    assign(ConstMatrixMap(a, m, k) * ConstMatrixMap(b, k, n));
  } else if (!transpose_a) {
    assign(ConstMatrixMap(a, m, k) * ConstMatrixMap(b, n, k).transpose());
  } else {
    assign(ConstMatrixMap(a, k, m).transpose() * ConstMatrixMap(b, k, n));
  }
}

std::string fp32_gemm_description() {
#ifdef DDP_HAVE_CBLAS
  std::string gemm = "OpenBLAS kernels: " + openblas_kernels();
#else
  std::string gemm = "Eigen GEMM";
#endif
  if (!tiled_gemm_available()) return gemm;
  const std::string tiled = std::string("tiled ") + tiled_gemm_isa() + " GEMM for ";
  return (skinny_to_blas() ? tiled + "small products (DDP_GEMM=blas), "
                           : tiled + "small products and " + tiled_skinny_products() +
                                 " <= " + std::to_string(kSkinnyMaxBatch) + ", ") +
         gemm + " otherwise";
}

}  // namespace ddp::cpu
