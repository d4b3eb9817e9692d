#pragma once
// Note [gradient clipping]: optimizer.global_clipnorm c scales a step's gradients by
// c / max(norm, c), norm being the L2 norm of all of them summed over ranks (Keras'
// global_clipnorm; PyTorch's clip_grad_norm_(max_norm=c) but for its 1e-6 beside the norm), before
// the optimizer reads them, so N ranks clip what one rank clips at the same global batch. The norm
// needs every summed gradient of the step before any update, so as with nonfinite: skip the
// gradient synchronization keeps its sums for the trainer (sums_before_step) and nothing updates
// during backward (Note [update in backward]): two passes of its own over the gradients.
// Replicated, every rank takes the norm of the same bits; ZeRO-1, each
// rank of its shard, summed through GradSync::sum_over_shards; either way every rank scales by the
// same factor and the replicas stay identical. A NaN or infinite norm scales nothing (or zeroes
// the rest): the non-finite check sees the gradients as they were.

#include <cstddef>

#include "backend/backend.h"
#include "comm/grad_sync.h"

namespace ddp {

// Clips sync.shard_grads() (valid: sums_before_step) to `max_norm` and returns the norm the step's
// gradients had.
double clip_global_norm(GradSync& sync, ComputeBackend& backend, double max_norm);

}  // namespace ddp
