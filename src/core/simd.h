#pragma once
// Note [SIMD width]: the register-tiled GEMMs (Note [tiled GEMM]) and the
// streamed copies are written once against this header, which maps them onto
// the widest float vectors the build targets: AVX-512 (16 lanes, masks in mask
// registers) or AVX2 + FMA (8 lanes, masks as lane vectors). Not every CPU with
// AVX2 has AVX-512: this session's AMD EPYC (family 25, model 1, Zen 3) has
// only AVX2, and without this header it fell back to OpenBLAS and Eigen for
// every product. DDP_SIMD_TILES is defined when one of the two is available.
//
// AVX2's masked stores are slow on AMD (microcoded), so with AVX2 the edge
// loads and stores take the masked form only where the mask leaves lanes out.

#include <cstdint>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define DDP_SIMD_TILES 1
#endif

#ifdef DDP_SIMD_TILES
namespace ddp::simd {

// Horizontal max and sum of 8 floats, the last steps of reduce_max and reduce_add at both widths.
inline float reduce_max8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}
inline float reduce_add8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

#ifdef __AVX512F__
inline constexpr const char* kName = "AVX-512";
inline constexpr int kLanes = 16;
inline constexpr int kRegisters = 32;
using Vec = __m512;
using Mask = __mmask16;

inline Mask first_lanes(int64_t count) {
  return count >= kLanes ? Mask(0xFFFF) : static_cast<Mask>((1u << count) - 1);
}
inline int lanes_in(Mask mask) { return __builtin_popcount(mask); }
inline Mask equal(Vec a, Vec b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
inline Mask both(Mask a, Mask b) { return a & b; }
inline Mask and_not(Mask a, Mask b) { return static_cast<Mask>(a & ~b); }   // a without b
inline Vec keep(Mask mask, Vec v) { return _mm512_maskz_mov_ps(mask, v); }  // others zero
inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec broadcast(float x) { return _mm512_set1_ps(x); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
// max, unpacks and shuffles in their zero-masking form with every lane set (the same
// instruction): GCC 12 warns that the plain forms' undefined pass-through "may be used
// uninitialized" once inlined.
constexpr Mask kAll = 0xFFFF;
inline Vec max(Vec a, Vec b) { return _mm512_maskz_max_ps(kAll, a, b); }
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline Vec load(const float* p, Mask mask) { return _mm512_maskz_loadu_ps(mask, p); }
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline void store(float* p, Mask mask, Vec v) { _mm512_mask_storeu_ps(p, mask, v); }
// p aligned to a whole vector.
inline void stream(float* p, Vec v) { _mm512_stream_ps(p, v); }

// The last vector of a row, `whole` when the mask covers every lane: masked
// operations cost nothing extra with AVX-512.
inline Vec load_edge(const float* p, Mask mask, bool /*whole*/) { return load(p, mask); }
inline void store_edge(float* p, Mask mask, bool /*whole*/, Vec v) { store(p, mask, v); }

// For the row reductions of softmax (Note [vectorized softmax]).
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec min(Vec a, Vec b) { return _mm512_maskz_min_ps(kAll, a, b); }
inline Vec div(Vec a, Vec b) { return _mm512_div_ps(a, b); }
inline Vec abs(Vec v) { return _mm512_abs_ps(v); }
inline Mask greater(Vec a, Vec b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
inline Vec select(Mask mask, Vec a, Vec b) {
  return _mm512_mask_blend_ps(mask, b, a);
}  // a in mask
// The masked-off lanes hold `fill`.
inline Vec load_or(const float* p, Mask mask, float fill) {
  return _mm512_mask_loadu_ps(broadcast(fill), mask, p);
}
// The zero-masking extract: the plain one (and _mm512_reduce_*_ps, built on it) trips GCC 12's
// uninitialized warnings like the forms above.
template <int Half>
__m256 half(Vec v) {
  return _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xFF, _mm512_castps_pd(v), Half));
}
inline float reduce_max(Vec v) { return reduce_max8(_mm256_max_ps(half<0>(v), half<1>(v))); }
inline float reduce_add(Vec v) { return reduce_add8(_mm256_add_ps(half<0>(v), half<1>(v))); }
// The lowest lane set in the mask, or -1 when none is.
inline int first_lane(Mask mask) { return mask ? __builtin_ctz(mask) : -1; }
inline Vec round_to_nearest(Vec v) {
  return _mm512_maskz_roundscale_ps(kAll, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// v * 2^n for whole-number n in [-126, 127].
inline Vec times_power_of_two(Vec v, Vec n) { return _mm512_maskz_scalef_ps(kAll, v, n); }

inline Vec unpack_lo(Vec a, Vec b) { return _mm512_maskz_unpacklo_ps(kAll, a, b); }
inline Vec unpack_hi(Vec a, Vec b) { return _mm512_maskz_unpackhi_ps(kAll, a, b); }
template <int Imm>
Vec shuffle(Vec a, Vec b) {
  return _mm512_maskz_shuffle_ps(kAll, a, b, Imm);
}
// The last step of transpose_square: u[4g + q] holds, in 128-bit lane L, column
// 4L + q of rows 4g .. 4g + 3; the four lanes of each column are gathered from
// u[q], u[4 + q], u[8 + q] and u[12 + q] in two rounds of lane shuffles.
inline void gather_lanes(const Vec u[kLanes], Vec r[kLanes]) {
  for (int q = 0; q < 4; ++q) {
    const Vec v0 = _mm512_maskz_shuffle_f32x4(kAll, u[q], u[4 + q], 0x44);
    const Vec v1 = _mm512_maskz_shuffle_f32x4(kAll, u[q], u[4 + q], 0xEE);
    const Vec v2 = _mm512_maskz_shuffle_f32x4(kAll, u[8 + q], u[12 + q], 0x44);
    const Vec v3 = _mm512_maskz_shuffle_f32x4(kAll, u[8 + q], u[12 + q], 0xEE);
    r[q] = _mm512_maskz_shuffle_f32x4(kAll, v0, v2, 0x88);
    r[4 + q] = _mm512_maskz_shuffle_f32x4(kAll, v0, v2, 0xDD);
    r[8 + q] = _mm512_maskz_shuffle_f32x4(kAll, v1, v3, 0x88);
    r[12 + q] = _mm512_maskz_shuffle_f32x4(kAll, v1, v3, 0xDD);
  }
}

#else  // AVX2 + FMA
inline constexpr const char* kName = "AVX2";
inline constexpr int kLanes = 8;
inline constexpr int kRegisters = 16;
using Vec = __m256;
using Mask = __m256i;  // all ones in the lanes that take part

inline Mask first_lanes(int64_t count) {
  const int lanes = count >= kLanes ? kLanes : static_cast<int>(count);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline int lanes_in(Mask mask) {
  return __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(mask))));
}
inline Mask equal(Vec a, Vec b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_EQ_OQ)); }
inline Mask both(Mask a, Mask b) { return _mm256_and_si256(a, b); }
inline Mask and_not(Mask a, Mask b) { return _mm256_andnot_si256(b, a); }  // a without b
inline Vec keep(Mask mask, Vec v) { return _mm256_and_ps(_mm256_castsi256_ps(mask), v); }
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec broadcast(float x) { return _mm256_set1_ps(x); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline Vec load(const float* p, Mask mask) { return _mm256_maskload_ps(p, mask); }
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline void store(float* p, Mask mask, Vec v) { _mm256_maskstore_ps(p, mask, v); }
inline void stream(float* p, Vec v) { _mm256_stream_ps(p, v); }

// The last vector of a row, `whole` when the mask covers every lane: the masked
// (slower) form only where lanes are left out.
inline Vec load_edge(const float* p, Mask mask, bool whole) {
  return whole ? load(p) : load(p, mask);
}
inline void store_edge(float* p, Mask mask, bool whole, Vec v) {
  if (whole) {
    store(p, v);
  } else {
    store(p, mask, v);
  }
}

inline Vec add(Vec a, Vec b) { return _mm256_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm256_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm256_mul_ps(a, b); }
inline Vec min(Vec a, Vec b) { return _mm256_min_ps(a, b); }
inline Vec div(Vec a, Vec b) { return _mm256_div_ps(a, b); }
inline Vec abs(Vec v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }
inline Mask greater(Vec a, Vec b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
inline Vec select(Mask mask, Vec a, Vec b) {  // a in the mask's lanes, b in the others
  return _mm256_blendv_ps(b, a, _mm256_castsi256_ps(mask));
}
inline Vec load_or(const float* p, Mask mask, float fill) {
  return _mm256_blendv_ps(broadcast(fill), load(p, mask), _mm256_castsi256_ps(mask));
}
inline float reduce_max(Vec v) { return reduce_max8(v); }
inline float reduce_add(Vec v) { return reduce_add8(v); }
inline int first_lane(Mask mask) {
  const auto bits = static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(mask)));
  return bits ? __builtin_ctz(bits) : -1;
}
inline Vec round_to_nearest(Vec v) {
  return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
// v * 2^n for whole-number n in [-126, 127]: 2^n built in the exponent field.
inline Vec times_power_of_two(Vec v, Vec n) {
  const __m256i biased = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
  return mul(v, _mm256_castsi256_ps(_mm256_slli_epi32(biased, 23)));
}

inline Vec unpack_lo(Vec a, Vec b) { return _mm256_unpacklo_ps(a, b); }
inline Vec unpack_hi(Vec a, Vec b) { return _mm256_unpackhi_ps(a, b); }
template <int Imm>
Vec shuffle(Vec a, Vec b) {
  return _mm256_shuffle_ps(a, b, Imm);
}
// The last step of transpose_square: u[4g + q] holds, in 128-bit half H, column
// 4H + q of rows 4g .. 4g + 3; each column is the matching halves of u[q] and
// u[4 + q].
inline void gather_lanes(const Vec u[kLanes], Vec r[kLanes]) {
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
    r[4 + q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
  }
}
#endif

// In-register transpose of kLanes rows of kLanes floats: unpack pairs of rows,
// then interleave 64-bit pairs (within each 128-bit lane, the same at every
// width), then gather_lanes.
inline void transpose_square(Vec r[kLanes]) {
  Vec t[kLanes];
  for (int i = 0; i < kLanes; i += 2) {
    t[i] = unpack_lo(r[i], r[i + 1]);
    t[i + 1] = unpack_hi(r[i], r[i + 1]);
  }
  Vec u[kLanes];
  for (int g = 0; g < kLanes; g += 4) {
    u[g] = shuffle<0x44>(t[g], t[g + 2]);
    u[g + 1] = shuffle<0xEE>(t[g], t[g + 2]);
    u[g + 2] = shuffle<0x44>(t[g + 1], t[g + 3]);
    u[g + 3] = shuffle<0xEE>(t[g + 1], t[g + 3]);
  }
  gather_lanes(u, r);
}

// e^x in every lane, within 2 ulp of std::exp for x in [-87.3, 88] and clamped to that range
// (e^-87.3 is the smallest normal float; softmax needs only x <= 0): x = n ln 2 + r with |r| <=
// ln(2) / 2, e^r from the degree-7 polynomial of Cephes's expf (S. Moshier), times 2^n. ln 2 is
// split in two so that n ln 2 is exact to float precision. NaN stays NaN: min and max return their
// second operand when either is NaN.
inline Vec exp(Vec x) {
  x = max(broadcast(-87.3365447f), min(broadcast(88.0f), x));
  const Vec n = round_to_nearest(mul(x, broadcast(1.44269504f)));
  Vec r = fma(n, broadcast(-0.693359375f), x);
  r = fma(n, broadcast(2.12194440e-4f), r);
  Vec p = broadcast(1.9875691500e-4f);
  p = fma(p, r, broadcast(1.3981999507e-3f));
  p = fma(p, r, broadcast(8.3334519073e-3f));
  p = fma(p, r, broadcast(4.1665795894e-2f));
  p = fma(p, r, broadcast(1.6666665459e-1f));
  p = fma(p, r, broadcast(5.0000001201e-1f));
  p = fma(p, mul(r, r), add(r, broadcast(1)));
  return times_power_of_two(p, n);
}

// Note [vector tanh and sigmoid]: the recurrent cells, dense and convolution layers and activation
// layers take tanh and sigmoid a vector at a time: libm's scalar tanhf took 63% of a step of
// configs/text_lstm.yaml on one core (AMD EPYC, Zen 4), and the LSTM cell's ops as a whole two
// thirds. Sigmoid is 1 / (1 + e^-x) through exp above. Tanh is Cephes's tanhf (S. Moshier): an odd
// polynomial below |x| = 0.625, where 1 - 2 / (e^2|x| + 1) would lose x's relative precision, and
// that above it; within a few ulp of std::tanh.
inline Vec sigmoid(Vec x) { return div(broadcast(1), add(broadcast(1), exp(sub(zero(), x)))); }
inline Vec tanh(Vec x) {
  const Vec a = abs(x);
  const Vec z = mul(x, x);
  Vec p = broadcast(-5.70498872745e-3f);
  p = fma(p, z, broadcast(2.06390887954e-2f));
  p = fma(p, z, broadcast(-5.37397155531e-2f));
  p = fma(p, z, broadcast(1.33314422036e-1f));
  p = fma(p, z, broadcast(-3.33332819422e-1f));
  const Vec small = fma(mul(p, z), x, x);
  const Vec large = sub(broadcast(1), div(broadcast(2), add(exp(add(a, a)), broadcast(1))));
  const Vec signed_large = select(greater(zero(), x), sub(zero(), large), large);
  return select(greater(broadcast(0.625f), a), small, signed_large);
}

// Calls f.template operator()<N>() for N = n, 1 <= n <= Max: a register tile's shape as a
// template argument, so that its accumulators live in registers.
template <int Max, typename F>
void with_count(int n, F&& f) {
  if constexpr (Max > 1) {
    if (n < Max) return with_count<Max - 1>(n, f);
  }
  f.template operator()<Max>();
}

}  // namespace ddp::simd
#endif
