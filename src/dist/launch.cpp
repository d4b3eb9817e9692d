#include "dist/launch.h"

#include <cstdlib>

namespace ddp {
namespace {

bool under_mpi_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(name)) return true;
  return false;
}

}  // namespace

std::unique_ptr<Communicator> connect(int* argc, char*** argv,
                                      std::unique_ptr<MpiRuntime>& runtime) {
  if (!under_mpi_launcher()) return make_local_communicator();
  runtime = std::make_unique<MpiRuntime>(argc, argv);
  return std::make_unique<MpiCommunicator>();
}

}  // namespace ddp
