#include "comm/launch.h"

#include <cstdio>
#include <cstdlib>

#include "core/error.h"

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

std::unique_ptr<Communicator> connect_or_exit(int* argc, char*** argv,
                                              std::unique_ptr<MpiRuntime>& runtime,
                                              const char* tool) {
  try {
    return connect(argc, argv, runtime);
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
    std::exit(static_cast<int>(e.code()));
  }
}

}  // namespace ddp
