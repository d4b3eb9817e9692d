#pragma once
// Non-blocking all-reduces of one communicator, cut into pieces that run one at a time (Note
// [overlapped pieces]).

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "comm/ring_all_reduce.h"

namespace ddp {

// Note [all-reduce pieces]: Open MPI's blocking all-reduce over TCP runs at line rate for buffers
// up to 2 MB, and far below it for larger ones: on 2 harness hosts with 1 Gbit/s links, 4 MB and
// 64 MB calls moved 0.088-0.091 GB/s where 1 MB pieces of the same buffer moved 0.119 (2 ranks
// exchange both ways over one socket, and the large-message protocol's control messages queue
// behind the data going the other way); on the unshaped bridge 1 MB pieces ran 3.3 GB/s against
// 1.1 for 4 MB calls; within a host (shared memory) 1 MB pieces were no slower. So every
// all-reduce through MPI goes in pieces: the trainer's buckets and the hierarchical path's slices
// alike; ZeRO-1's reduce-scatter and all-gather go in rounds of a piece each.
// benchmarks/results/allreduce_pieces.md has the training runs before and after.
// A ring all-reduce of a piece sends each neighbour messages of piece / ranks bytes, and every
// one of its 2 (ranks - 1) steps pays the link's latency; so a piece is 512 KB per rank (1 MB at
// 2 ranks, as measured above), which keeps the messages at the size that ran at line rate while
// the latencies per byte stay those of 2 ranks. Fixed 1 MB pieces on 4 harness hosts (256 KB
// messages), 58.9 MB through 1 Gbit/s links with 2 ms of delay: 2.17-2.21 s; 2 MB pieces:
// 1.19-1.22 s; without the delay 0.74 s both (4 MB pieces: 0.85 s). The price: a link whose
// buffer holds less than a message (the harness's 100 Mbit/s token bucket: 256 KB of burst and
// 10 ms of queue) drops packets of 512 KB messages where 256 KB ones passed; W2 on 4 such hosts
// trained 0.87x as fast as in 1 MB pieces (2 ranks pay it with 1 MB pieces too).
inline size_t all_reduce_piece_bytes(int ranks) {
  constexpr size_t kMessageBytes = size_t{512} << 10;
  constexpr size_t kMostBytes = size_t{1} << 30;  // MPI counts are int
  return std::min(static_cast<size_t>(std::max(ranks, 2)) * kMessageBytes, kMostBytes);
}

// Note [overlapped pieces]: Open MPI's non-blocking all-reduce (libnbc) over TCP moved 0.06-0.07
// GB/s on 2 harness hosts with 1 Gbit/s links whether a 64 MB buffer went as one call or as 16 to
// 256 calls started together; the same calls issued one after the other, each waited for before
// the next started, ran at line rate (0.120 GB/s for 1 MB and 256 KB pieces). So the overlapped
// path queues its buckets' pieces here: one is in flight at a time, and every test() of any
// bucket moves the queue on. The pieces run on a communicator of their own, since when a queued
// piece starts depends on timing, which differs between ranks: on the shared one a blocking
// collective issued meanwhile (a synchronized batch norm's sums) could pair with a piece.
class MpiPieceQueue {
 public:
  explicit MpiPieceQueue(MPI_Comm comm);  // works on a duplicate of comm
  ~MpiPieceQueue();
  MpiPieceQueue(const MpiPieceQueue&) = delete;
  MpiPieceQueue& operator=(const MpiPieceQueue&) = delete;

  // Queues an in-place sum of count elements at data; returns the ticket that progress()
  // reaches once the last of its pieces is done. The buffer must stay untouched until then.
  uint64_t enqueue(void* data, size_t count, MPI_Datatype type, size_t type_bytes, MPI_Op op);
  // The same, in one piece around the ring.
  uint64_t enqueue_ring(void* data, size_t count, const RingElement& element);
  // Drives progress: tests the piece in flight and starts the next ones as they finish.
  uint64_t progress();
  // Completes every piece through ticket, in order.
  void wait_through(uint64_t ticket);

 private:
  struct Piece {
    void* data;
    size_t count;  // at most an int's worth unless around the ring
    MPI_Datatype type;
    MPI_Op op;
    const RingElement* ring;  // null: MPI_Iallreduce
  };
  void start_next();
  bool in_flight() const { return in_flight_ != MPI_REQUEST_NULL || ring_ != nullptr; }
  // Tests (or waits for) the piece in flight; true once it is complete.
  bool finished(bool block);

  MPI_Comm comm_ = MPI_COMM_NULL;
  std::deque<Piece> waiting_;
  MPI_Request in_flight_ = MPI_REQUEST_NULL;
  std::unique_ptr<RingAllReduce> ring_;  // or this ring
  std::vector<std::byte> ring_staging_;  // the rings' staging while none is in flight
  size_t piece_bytes_ = 0;               // all_reduce_piece_bytes of comm's ranks
  uint64_t queued_ = 0;
  uint64_t completed_ = 0;
};

}  // namespace ddp
