#include "comm/ring_all_reduce.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/mpi_check.h"
#include "comm/mpi_request.h"

namespace ddp {

// Note [ring all-reduce]: on the namespace harness, Open MPI's MPI_Allreduce in pieces took
// 1.4-1.7x the time of the link's bytes wherever the link has a rate limit with a shallow queue or
// a delay (4 hosts at 100 Mbit/s: 862 ms for 4 MB where this ring took 554; 2 hosts at 1 Gbit/s
// with 2 ms of delay: 61 against 35): its 4-rank choice (Rabenseifner's, forced by
// coll_tuned_allreduce_algorithm it timed the same) exchanges 1 MB messages both ways over one
// socket, each large message waits a round trip for the receiver's handshake, and every piece
// waits for its slowest step. It also ran faster inside training than in a back to back sweep
// (W2 on 4 x 1 at 100 Mbit/s: 334-366 ms against 410-418), which the scaling model could not
// predict; Open MPI's ring (algorithm 4) ran at the link's rate in both. Here: reduce-scatter then
// all-gather around the ring (each rank sends 2 (n - 1) / n of the buffer, the least possible),
// every part cut into segments that go eagerly, and a segment forwarded to the right as soon as
// it arrived from the left, so the link never idles for a handshake or a piece's slowest step.
// Where the "link" is a memory copy on the same cores (the harness's unshaped bridge) the library
// stayed ahead (W3 0.91-0.94x), the eager segments' copies costing what its large messages save;
// real links without a rate limit or delay measured alike (1.00-1.07x at 1 Gbit/s). Hence
// training.mpi_allreduce: auto takes the ring between hosts. benchmarks/results/ring_allreduce.md.
//
// Segment j of the part a rank sends at step t is the segment it received at step t - 1: part
// r - 1 - t during the reduce-scatter (t < n - 1), after which rank r holds the whole sum of its
// own part r; then part r - s at all-gather step s. Messages between two neighbours are matched in
// the order they were sent (MPI's non-overtaking rule), step by step, segment by segment. ZeRO-1's
// collectives run one half each, with parts of the lengths of the ranks' shards.
namespace {
// Receives posted ahead of the one being waited for: 4 MB of 256 KB segments (with 60 KB
// segments, 16 and 64 measured alike on the harness).
constexpr size_t kWindow = 16;
}  // namespace

namespace {
std::vector<size_t> even_parts(size_t count, MPI_Comm comm) {
  int ranks = 1;
  mpiCheck(MPI_Comm_size(comm, &ranks));
  std::vector<size_t> parts(static_cast<size_t>(ranks) + 1);
  for (size_t p = 0; p < parts.size(); ++p) parts[p] = count * p / static_cast<size_t>(ranks);
  return parts;
}
}  // namespace

RingAllReduce::RingAllReduce(void* data, size_t count, const RingElement& element, MPI_Comm comm,
                             std::vector<std::byte> staging)
    : RingAllReduce(data, even_parts(count, comm), RingHalves::kBoth, element, comm,
                    std::move(staging)) {}

RingAllReduce::RingAllReduce(void* data, std::vector<size_t> parts, RingHalves halves,
                             const RingElement& element, MPI_Comm comm,
                             std::vector<std::byte> staging)
    : data_(static_cast<std::byte*>(data)),
      parts_(std::move(parts)),
      halves_(halves),
      element_(element),
      comm_(comm),
      staging_(std::move(staging)) {
  mpiCheck(MPI_Comm_rank(comm, &rank_));
  mpiCheck(MPI_Comm_size(comm, &ranks_));
  if (parts_.size() != static_cast<size_t>(ranks_) + 1)
    throw std::logic_error("RingAllReduce: " + std::to_string(parts_.size()) +
                           " part offsets for " + std::to_string(ranks_) + " ranks");
  if (ranks_ == 1 || parts_.back() == parts_.front()) return;  // nothing to send: complete
  first_step_ = halves == RingHalves::kAllGather ? ranks_ - 1 : 0;
  end_step_ = halves == RingHalves::kReduceScatter ? ranks_ - 1 : 2 * (ranks_ - 1);
  size_t longest = 0;
  for (int p = 0; p < ranks_; ++p) longest = std::max(longest, parts_[p + 1] - parts_[p]);
  const size_t segment = std::max<size_t>(kRingSegmentBytes / element.bytes, 1);
  segments_ = std::max<size_t>((longest + segment - 1) / segment, 1);
  messages_ = static_cast<size_t>(end_step_ - first_step_) * segments_;
  slot_bytes_ = segment * element.bytes;
  if (staging_.size() < kWindow * slot_bytes_) staging_.resize(kWindow * slot_bytes_);
  sends_.assign(messages_, MPI_REQUEST_NULL);
  receives_.assign(kWindow, MPI_REQUEST_NULL);
  for (size_t j = 0; j < segments_; ++j) send(first_step_, j);
  while (posted_ < std::min(messages_, kWindow) && post_receive(/*block=*/false)) {
  }
}

// Handles the messages in the order they were sent: each reduce-scatter segment is added where it
// belongs, and every segment but the last step's goes on to the right at once.
bool RingAllReduce::advance(bool block) {
  while (done_ < messages_) {
    while (posted_ < std::min(messages_, done_ + kWindow) && post_receive(block)) {
    }
    if (posted_ == done_) return false;  // its send still reads the bytes it would land on
    if (!request_complete(receives_[done_ % kWindow], block)) return false;
    const int step = first_step_ + static_cast<int>(done_ / segments_);
    const size_t j = done_ % segments_;
    if (step < ranks_ - 1) {  // reduce-scatter: add what arrived in the staging slot
      const Range range = segment(received_part(step), j);
      element_.add(staging_.data() + slot_offset(done_), data_ + range.begin * element_.bytes,
                   range.count);
    }
    if (step + 1 < end_step_) send(step + 1, j);
    ++done_;
  }
  for (MPI_Request& request : sends_)
    if (!request_complete(request, block)) return false;
  return true;
}

int RingAllReduce::sent_part(int step) const {
  return step < ranks_ - 1 ? wrap(rank_ - 1 - step) : wrap(rank_ - (step - (ranks_ - 1)));
}

int RingAllReduce::received_part(int step) const { return wrap(sent_part(step) - 1); }

// Every part in the same number of segments (a part may be empty: ZeRO-1's shards).
RingAllReduce::Range RingAllReduce::segment(int part, size_t j) const {
  const size_t begin = parts_[static_cast<size_t>(part)];
  const size_t length = parts_[static_cast<size_t>(part) + 1] - begin;
  const size_t from = begin + length * j / segments_;
  return {from, begin + length * (j + 1) / segments_ - from};
}

size_t RingAllReduce::slot_offset(size_t message) const {
  return (message % kWindow) * slot_bytes_;
}

void RingAllReduce::send(int step, size_t j) {
  const Range range = segment(sent_part(step), j);
  mpiCheck(MPI_Isend(data_ + range.begin * element_.bytes, static_cast<int>(range.count),
                     element_.type, wrap(rank_ + 1), 0, comm_,
                     &sends_[static_cast<size_t>(step - first_step_) * segments_ + j]));
}

// Reduce-scatter segments land in a staging slot; all-gather segments in place, once the send
// that read the same bytes during the reduce-scatter (part r - 1 - s went out at step s) is done.
// False where that send is still in flight and `block` is false.
bool RingAllReduce::post_receive(bool block) {
  const int step = first_step_ + static_cast<int>(posted_ / segments_);
  const size_t j = posted_ % segments_;
  const Range range = segment(received_part(step), j);
  std::byte* into = staging_.data() + slot_offset(posted_);
  if (step >= ranks_ - 1) {
    const auto reduce_step = static_cast<size_t>(step - (ranks_ - 1));
    if (halves_ == RingHalves::kBoth &&
        !request_complete(sends_[reduce_step * segments_ + j], block))
      return false;
    into = data_ + range.begin * element_.bytes;
  }
  mpiCheck(MPI_Irecv(into, static_cast<int>(range.count), element_.type, wrap(rank_ - 1), 0, comm_,
                     &receives_[posted_ % kWindow]));
  ++posted_;
  return true;
}

void ring_all_reduce(void* data, std::vector<size_t> parts, RingHalves halves,
                     const RingElement& element, MPI_Comm comm, std::vector<std::byte>& staging) {
  RingAllReduce ring(data, std::move(parts), halves, element, comm, std::move(staging));
  ring.wait();
  staging = ring.take_staging();
}

void ring_all_reduce(void* data, size_t count, const RingElement& element, MPI_Comm comm,
                     std::vector<std::byte>& staging) {
  ring_all_reduce(data, even_parts(count, comm), RingHalves::kBoth, element, comm, staging);
}

}  // namespace ddp
