#pragma once
// Note [gradient clipping]: optimizer.global_clipnorm c scales a step's gradients by
// c / max(norm, c), norm being the L2 norm of all of them summed over ranks (Keras'
// global_clipnorm; PyTorch's clip_grad_norm_(max_norm=c) but for its 1e-6 beside the norm), so N
// ranks clip what one rank clips at the same global batch. The norm needs every summed gradient
// of the step before any update, so as with nonfinite: skip the gradient synchronization keeps its
// sums for the trainer (sums_before_step) and nothing updates during backward (Note [update in
// backward]). The norm takes a pass over the gradients; the scale rides on the optimizer's own
// (Optimizer::begin_step), which reads each gradient times it. Replicated, every rank takes the
// norm of the same bits; ZeRO-1, each rank of its shard, summed through
// GradSync::sum_over_shards; either way every rank scales by the same factor and the replicas stay
// identical. A NaN norm scales nothing and an infinite one by zero, so the non-finite check still
// sees NaN gradients.

#include "backend/backend.h"
#include "comm/grad_sync.h"

namespace ddp {

// The factor that clips sync.shard_grads() (valid: sums_before_step) to `max_norm`: 1 where their
// norm is within it.
float global_clip_scale(GradSync& sync, ComputeBackend& backend, double max_norm);

}  // namespace ddp
