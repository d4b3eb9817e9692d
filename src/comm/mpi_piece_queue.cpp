#include "comm/mpi_piece_queue.h"

#include <algorithm>

#include "comm/mpi_check.h"
#include "comm/mpi_request.h"

namespace ddp {

MpiPieceQueue::MpiPieceQueue(MPI_Comm comm) {
  mpiCheck(MPI_Comm_dup(comm, &comm_));
  mpiCheck(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  int ranks = 0;
  mpiCheck(MPI_Comm_size(comm_, &ranks));
  piece_bytes_ = all_reduce_piece_bytes(ranks);
}

MpiPieceQueue::~MpiPieceQueue() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  // A piece still in flight (only after a failure elsewhere) is left to MPI: waiting could hang
  // on a dead rank, and an active collective request may not be freed. The communicator is
  // freed once it completes. A ring in flight keeps its staging, into which MPI may still write.
  static_cast<void>(ring_.release());
  MPI_Comm_free(&comm_);
}

uint64_t MpiPieceQueue::enqueue(void* data, size_t count, MPI_Datatype type, size_t type_bytes,
                                MPI_Op op) {
  const size_t piece = piece_bytes_ / type_bytes;
  auto* bytes = static_cast<std::byte*>(data);
  for (size_t start = 0; start < count; start += piece) {
    waiting_.push_back(
        Piece{bytes + start * type_bytes, std::min(piece, count - start), type, op, nullptr});
    ++queued_;
  }
  if (!in_flight()) start_next();
  return queued_;
}

uint64_t MpiPieceQueue::enqueue_ring(void* data, size_t count, const RingElement& element) {
  waiting_.push_back(Piece{data, count, element.type, MPI_OP_NULL, &element});
  ++queued_;
  if (!in_flight()) start_next();
  return queued_;
}

void MpiPieceQueue::start_next() {
  if (waiting_.empty()) return;
  const Piece p = waiting_.front();
  waiting_.pop_front();
  if (p.ring) {
    ring_ =
        std::make_unique<RingAllReduce>(p.data, p.count, *p.ring, comm_, std::move(ring_staging_));
    return;
  }
  mpiCheck(MPI_Iallreduce(MPI_IN_PLACE, p.data, static_cast<int>(p.count), p.type, p.op, comm_,
                          &in_flight_));
}

bool MpiPieceQueue::finished(bool block) {
  if (ring_) {
    if (block) {
      ring_->wait();
    } else if (!ring_->test()) {
      return false;
    }
    ring_staging_ = ring_->take_staging();
    ring_.reset();
    return true;
  }
  return request_complete(in_flight_, block);
}

uint64_t MpiPieceQueue::progress() {
  while (in_flight() && finished(/*block=*/false)) {
    ++completed_;
    start_next();
  }
  return completed_;
}

void MpiPieceQueue::wait_through(uint64_t ticket) {
  while (completed_ < ticket) {
    finished(/*block=*/true);
    ++completed_;
    start_next();
  }
}

}  // namespace ddp
