#include "comm/buckets.h"

namespace ddp {

std::vector<Bucket> cut_buckets(std::span<const size_t> tensor_offsets, size_t total,
                                size_t bucket_bytes) {
  std::vector<Bucket> buckets;
  size_t end = total;
  for (auto it = tensor_offsets.rbegin(); it != tensor_offsets.rend(); ++it) {
    const size_t start = *it;
    if ((end - start) * sizeof(float) >= bucket_bytes) {
      buckets.push_back({start, end - start});
      end = start;
    }
  }
  if (end > 0) buckets.push_back({0, end});
  return buckets;
}

}  // namespace ddp
