#include "comm/mpi_check.h"

#include <mpi.h>

#include <sstream>
#include <string_view>

#include "core/error.h"

namespace ddp {

void mpi_check(int rc, const char* call, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) length = 0;
  int rank = -1;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::ostringstream message;
  message << "MPI error on rank " << rank << " in " << call << " (" << file << ":" << line
          << "): " << std::string_view(text, static_cast<size_t>(length));
  throw RuntimeError(message.str());
}

}  // namespace ddp
