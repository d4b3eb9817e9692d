#pragma once
// The trainer's own all-reduce for large buffers over MPI point-to-point messages (Note [ring
// all-reduce]).

#include <mpi.h>

#include <cstddef>
#include <utility>
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

// Which of the ring's two halves run: both (the all-reduce), or one (ZeRO-1's collectives). The
// reduce-scatter leaves rank p with the sum of part p; the all-gather copies each rank p's part p
// to every rank.
enum class RingHalves { kBoth, kReduceScatter, kAllGather };

// In place over every rank of comm (a communicator of its own: the ring's messages must not meet
// anyone else's), started by the constructor and moved on by test() or finished by wait(); every
// rank ends with the same bytes of each part it holds. `staging` holds the segments in flight:
// handed back by take_staging() for the next call (grown, never cleared: 4 MB of zeros per call
// cost). Calls on one communicator run one after the other, in the same order on every rank.
class RingAllReduce {
 public:
  // `parts` holds ranks + 1 element offsets: part p is [parts[p], parts[p + 1]).
  RingAllReduce(void* data, std::vector<size_t> parts, RingHalves halves,
                const RingElement& element, MPI_Comm comm, std::vector<std::byte> staging);
  // The sum of count elements, cut into parts of (nearly) equal length.
  RingAllReduce(void* data, size_t count, const RingElement& element, MPI_Comm comm,
                std::vector<std::byte> staging);
  RingAllReduce(const RingAllReduce&) = delete;
  RingAllReduce& operator=(const RingAllReduce&) = delete;

  bool test() { return advance(/*block=*/false); }  // true once complete
  void wait() { advance(/*block=*/true); }
  std::vector<std::byte> take_staging() { return std::move(staging_); }

 private:
  struct Range {
    size_t begin;
    size_t count;
  };

  bool advance(bool block);
  int wrap(int i) const { return ((i % ranks_) + ranks_) % ranks_; }
  int sent_part(int step) const;
  int received_part(int step) const;
  Range segment(int part, size_t j) const;
  size_t slot_offset(size_t message) const;
  void send(int step, size_t j);
  bool post_receive(bool block);

  std::byte* data_;
  std::vector<size_t> parts_;
  RingHalves halves_;
  RingElement element_;
  MPI_Comm comm_;
  int rank_ = 0;
  int ranks_ = 1;
  int first_step_ = 0;  // of the 2 (ranks - 1): the reduce-scatter's, then the all-gather's
  int end_step_ = 0;
  size_t segments_ = 1;
  size_t messages_ = 0;  // (end_step_ - first_step_) x segments_ received, and as many sent
  size_t posted_ = 0;    // receives posted ...
  size_t done_ = 0;      // ... and handled: [done_, posted_) are in flight
  size_t slot_bytes_ = 0;
  std::vector<std::byte> staging_;
  std::vector<MPI_Request> sends_;
  std::vector<MPI_Request> receives_;
};

// Blocking, reusing `staging` between calls: the sum, or the halves over `parts`.
void ring_all_reduce(void* data, size_t count, const RingElement& element, MPI_Comm comm,
                     std::vector<std::byte>& staging);
void ring_all_reduce(void* data, std::vector<size_t> parts, RingHalves halves,
                     const RingElement& element, MPI_Comm comm, std::vector<std::byte>& staging);

}  // namespace ddp
