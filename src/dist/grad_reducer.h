#pragma once

#include <span>
#include <vector>

#include "dist/communicator.h"
#include "nn/sequential.h"

namespace ddp {

struct Bucket {
  size_t offset;  // floats into the flat gradient buffer
  size_t count;
};

// Sums gradients over ranks, one all-reduce per bucket of the flat gradient buffer.
// Note [bucket order]: buckets are cut in reverse layer order (the order in which backward
// produces gradients) from whole parameter tensors until each holds at least bucket_bytes, so
// the reduction of the last layers can start first. The layout depends only on the model and
// bucket_bytes, hence is identical on every rank.
class GradReducer {
 public:
  GradReducer(Communicator& comm, std::span<float> grads, const std::vector<ParamEntry>& params,
              size_t bucket_bytes);
  void reduce();
  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  Communicator& comm_;
  std::span<float> grads_;
  std::vector<Bucket> buckets_;
};

}  // namespace ddp
