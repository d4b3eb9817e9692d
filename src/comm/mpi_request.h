#pragma once
// Completing an MPI request either way, for the progress loops that serve both test() and wait()
// (RingAllReduce, MpiPieceQueue).

#include <mpi.h>

#include "comm/mpi_check.h"

namespace ddp {

// Waits for (block) or tests `request`; true once it is complete.
inline bool request_complete(MPI_Request& request, bool block) {
  if (block) {
    mpiCheck(MPI_Wait(&request, MPI_STATUS_IGNORE));
    return true;
  }
  int done = 0;
  mpiCheck(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
  return done != 0;
}

}  // namespace ddp
