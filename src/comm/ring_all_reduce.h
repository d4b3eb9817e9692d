#pragma once
// The trainer's own all-reduce for large buffers over MPI point-to-point messages (Note [ring
// all-reduce]).

#include <mpi.h>

#include <cstddef>
#include <vector>

namespace ddp {

// An element type the ring can sum: its MPI datatype, size, and inout[i] += in[i] for n of them.
struct RingElement {
  MPI_Datatype type;
  size_t bytes;
  void (*add)(const void* in, void* inout, size_t n);
};

// Segments go eagerly over Open MPI's TCP transport, whose eager limit MpiRuntime raises to hold
// one (Note [eager messages]): a sender never waits for the receiver's handshake.
inline constexpr size_t kRingSegmentBytes = size_t{256} << 10;

// In-place sum of count elements over every rank of comm (a communicator of its own: the ring's
// messages must not meet anyone else's). Every rank ends with the same bytes. `staging` holds the
// segments in flight, kept between calls (grown, never cleared: 4 MB of zeros per call cost).
void ring_all_reduce(void* data, size_t count, const RingElement& element, MPI_Comm comm,
                     std::vector<std::byte>& staging);

}  // namespace ddp
