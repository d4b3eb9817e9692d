#pragma once

#include <memory>

#include "comm/communicator.h"
#include "comm/mpi_communicator.h"

namespace ddp {

// The communicator a process should use: MPI when it was started by mpirun/mpiexec (Open MPI,
// MPICH, Slurm's PMI), otherwise a world of one that never initializes MPI, which spares a
// directly started process MPI's singleton start-up (~0.3 s with Open MPI). `runtime` keeps MPI
// initialized for as long as it lives. Throws RuntimeError when MPI fails to start.
std::unique_ptr<Communicator> connect(int* argc, char*** argv,
                                      std::unique_ptr<MpiRuntime>& runtime);

// connect() for a tool's main(): on failure prints "<tool>: error: ..." and exits with the
// error's code (nothing is running yet that would need cleaning up).
std::unique_ptr<Communicator> connect_or_exit(int* argc, char*** argv,
                                              std::unique_ptr<MpiRuntime>& runtime,
                                              const char* tool);

}  // namespace ddp
