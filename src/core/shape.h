#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace ddp {

// Per-sample shape of an activation or the full shape of a parameter, row-major.
// The batch dimension is never part of a layer's shape: activations are (batch, shape...).
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int64_t numel() const;
  size_t rank() const { return dims_.size(); }
  int64_t operator[](size_t i) const { return dims_[i]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  std::string str() const;  // "(28, 28)"
  bool operator==(const Shape& other) const = default;

 private:
  std::vector<int64_t> dims_;
};

}  // namespace ddp
