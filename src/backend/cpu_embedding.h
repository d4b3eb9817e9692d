#pragma once
// The CPU's Embedding (ComputeBackend::embedding_forward, embedding_backward): a gather of table
// rows, and the scatter-add of their gradients.

#include <cstdint>

namespace ddp::cpu {

// y (count, dim): row ids[i] of table (vocabulary, dim) for each i; ids are whole numbers in
// range (checked with the data).
void embedding_rows(const float* ids, const float* table, float* y, int64_t count, int64_t dim);

// Columns [first, end) of dtable (vocabulary, dim): zeroed unless `accumulate`, then dy's row i
// added to row ids[i], i in order, so that the sums' bits do not depend on how the columns are
// shared out.
void embedding_grad_columns(const float* ids, const float* dy, float* dtable, int64_t count,
                            int64_t vocabulary, int64_t dim, int64_t first, int64_t end,
                            bool accumulate);

}  // namespace ddp::cpu
