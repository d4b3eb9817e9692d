#include "dist/grad_reducer.h"

namespace ddp {

GradReducer::GradReducer(Communicator& comm, std::span<float> grads,
                         const std::vector<ParamEntry>& params, size_t bucket_bytes)
    : comm_(comm), grads_(grads) {
  size_t end = grads.size();
  size_t start = end;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    start = it->offset;
    if ((end - start) * sizeof(float) >= bucket_bytes) {
      buckets_.push_back({start, end - start});
      end = start;
    }
  }
  if (end > 0) buckets_.push_back({0, end});
}

void GradReducer::reduce() {
  if (comm_.size() == 1) return;
  for (const Bucket& b : buckets_) comm_.all_reduce_sum(grads_.subspan(b.offset, b.count));
}

}  // namespace ddp
