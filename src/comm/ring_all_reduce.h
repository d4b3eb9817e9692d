#pragma once
// The trainer's own all-reduce for large buffers over MPI point-to-point messages (Note [ring
// all-reduce]).

#include <mpi.h>

#include <cstddef>

namespace ddp {

// An element type the ring can sum: its MPI datatype, size, and inout[i] += in[i] for n of them.
struct RingElement {
  MPI_Datatype type;
  size_t bytes;
  void (*add)(const void* in, void* inout, size_t n);
};

// Messages this size or smaller travel eagerly over Open MPI's TCP transport (btl_tcp_eager_limit,
// 64 KB with its header), so a sender never waits for the receiver's handshake.
inline constexpr size_t kRingSegmentBytes = size_t{60} << 10;

// In-place sum of count elements over every rank of comm (a communicator of its own: the ring's
// messages must not meet anyone else's). Every rank ends with the same bytes.
void ring_all_reduce(void* data, size_t count, const RingElement& element, MPI_Comm comm);

}  // namespace ddp
