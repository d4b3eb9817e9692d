#include "backend/cpu_embedding.h"

#include <algorithm>
#include <cstring>

namespace ddp::cpu {

void embedding_rows(const float* ids, const float* table, float* y, int64_t count, int64_t dim) {
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(y + i * dim, table + static_cast<int64_t>(ids[i]) * dim,
                static_cast<size_t>(dim) * sizeof(float));
}

void embedding_grad_columns(const float* ids, const float* dy, float* dtable, int64_t count,
                            int64_t vocabulary, int64_t dim, int64_t first, int64_t end,
                            bool accumulate) {
  if (!accumulate)
    for (int64_t v = 0; v < vocabulary; ++v)
      std::fill(dtable + v * dim + first, dtable + v * dim + end, 0.0f);
  for (int64_t i = 0; i < count; ++i) {
    float* row = dtable + static_cast<int64_t>(ids[i]) * dim;
    const float* g = dy + i * dim;
    for (int64_t c = first; c < end; ++c) row[c] += g[c];
  }
}

}  // namespace ddp::cpu
