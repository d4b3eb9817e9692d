#pragma once
// bfloat16 as raw bits: the upper half of a float32, rounded to nearest even. Used to halve the
// bytes of gradient all-reduces when training.wire_dtype is bf16.

#include <cstdint>
#include <cstring>

namespace ddp {

inline uint16_t to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float from_bf16(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

// from_bf16(to_bf16(value)), bit for bit, without a branch: loops of it vectorize.
inline float round_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
  const uint32_t out = (bits & 0x7fffffffu) > 0x7f800000u ? 0x7fc00000u : rounded;
  float result;
  std::memcpy(&result, &out, sizeof result);
  return result;
}

}  // namespace ddp
