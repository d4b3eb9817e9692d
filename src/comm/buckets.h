#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace ddp {

// A stretch of the flat gradient buffer that is summed over ranks by one collective.
struct Bucket {
  size_t offset;  // floats into the flat gradient buffer
  size_t count;
};

// Note [bucket order]: buckets are cut in reverse layer order (the order in which backward
// produces gradients) from whole parameter tensors until each holds at least bucket_bytes, so the
// reduction of the last layers can start first. The layout depends only on the model and
// bucket_bytes, hence is identical on every rank.
// tensor_offsets: where each parameter tensor starts in the buffer of `total` floats, ascending.
std::vector<Bucket> cut_buckets(std::span<const size_t> tensor_offsets, size_t total,
                                size_t bucket_bytes);

}  // namespace ddp
