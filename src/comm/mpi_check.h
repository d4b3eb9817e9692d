#pragma once
// The one check for MPI return codes (MPI stays out of core/).

namespace ddp {

// Throws RuntimeError naming the MPI call, its error string, the rank, file and line when
// rc != MPI_SUCCESS.
void mpi_check(int rc, const char* call, const char* file, int line);

}  // namespace ddp

#define mpiCheck(call) ::ddp::mpi_check((call), #call, __FILE__, __LINE__)
