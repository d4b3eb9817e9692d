#pragma once
// Integers read from JSON that came from a file (a checkpoint's metadata, a safetensors header).
// nlohmann's get<T>() converts a float (16.0, 2e69) or an integer out of T's range with a cast,
// which rounds the one and is undefined behaviour for the other (fuzz_safetensors found a
// 2.4e69 byte offset); json_integer refuses both.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace ddp {

// `v` as a T: a JSON integer within T's range, else std::invalid_argument naming the value.
template <typename T>
T json_integer(const nlohmann::json& v) {
  static_assert(std::is_integral_v<T>);
  if (v.is_number_unsigned() && std::in_range<T>(v.get<uint64_t>()))
    return static_cast<T>(v.get<uint64_t>());
  if (v.is_number_integer() && !v.is_number_unsigned() && std::in_range<T>(v.get<int64_t>()))
    return static_cast<T>(v.get<int64_t>());
  throw std::invalid_argument(v.dump() + " is not an integer that fits");
}

// A JSON array of such integers.
template <typename T>
std::vector<T> json_integers(const nlohmann::json& v) {
  if (!v.is_array()) throw std::invalid_argument(v.dump() + " is not a list of integers");
  std::vector<T> out;
  for (const nlohmann::json& e : v) out.push_back(json_integer<T>(e));
  return out;
}

}  // namespace ddp
