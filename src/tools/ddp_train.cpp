// ddp_train: data-parallel training of a sequential network, one process per rank under mpirun.
// Only this file turns errors into messages and exit codes.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/error.h"
#include "dist/agreement.h"
#include "dist/mpi_communicator.h"
#include "train/trainer.h"

namespace {

using namespace ddp;

struct Options {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_dir;
  std::string progress = "auto";
};

// Open MPI hands every rank a pseudo-terminal even when mpirun's own output goes to a file or a
// pipe, so under mpirun "auto" cannot tell a person from a log and stays off.
bool show_progress(const std::string& mode) {
  if (mode != "auto") return mode == "on";
  return isatty(STDOUT_FILENO) && std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr;
}

std::string rank_prefix(const Communicator& comm) {
  return comm.size() > 1 ? "[rank " + std::to_string(comm.rank()) + "] " : "";
}

void print_error(const Communicator& comm, const std::string& message) {
  std::cerr << rank_prefix(comm) << "ddp_train: error: " << message << std::endl;
}

void write_resolved_config(const Config& config, const std::string& run_dir) {
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  if (ec) throw RuntimeError(run_dir + ": cannot create run directory: " + ec.message());
  const std::string path = run_dir + "/config.yaml";
  std::ofstream out(path, std::ios::trunc);
  out << "# resolved from " << config.file << " (defaults and --set overrides applied)\n"
      << YAML::Dump(config.resolved) << '\n';
  out.close();
  if (!out) throw RuntimeError(path + ": cannot write resolved config");
}

// Every rank must hold the same data: compare each rank's fingerprint with rank 0's.
void check_same_data(Communicator& comm, const Dataset& data) {
  uint32_t reference = data.fingerprint();
  const uint32_t mine = reference;
  comm.broadcast(std::span<uint32_t>(&reference, 1), 0);
  run_agreed(comm, [&] {
    if (mine != reference)
      throw DataError(data.origin + ": this rank's copy differs from rank 0's (CRC-32 " +
                      std::to_string(mine) + " vs " + std::to_string(reference) + ")");
  });
}

// `training` turns true once every rank has passed setup; errors after that may be one rank's.
int train(Communicator& comm, const Options& options, bool& training) {
  std::unique_ptr<ComputeBackend> backend = make_cpu_backend();
  Config config;
  Dataset train_data;
  std::optional<Dataset> test_data;
  // Only local work here; failures are agreed on before any rank moves on.
  run_agreed(comm, [&] {
    config = load_config(options.config, options.overrides);
    if (comm.rank() == 0) write_resolved_config(config, options.run_dir);
    train_data = load_dataset(config.train_data, comm.rank());
    if (config.test_data) test_data = load_dataset(*config.test_data, comm.rank());
  });
  check_same_data(comm, train_data);
  if (test_data) check_same_data(comm, *test_data);

  Trainer trainer(config, comm, *backend, std::move(train_data), std::move(test_data));
  const bool lead = comm.rank() == 0;
  if (lead)
    std::cout << "ddp-trainer: " << comm.size() << " rank(s), " << backend->name()
              << " backend, config " << options.config << ", run dir " << options.run_dir
              << "\n";
  trainer.set_reporting(lead ? &std::cout : nullptr, lead && show_progress(options.progress),
                        lead ? options.run_dir : "");
  training = true;
  trainer.fit();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<MpiRuntime> mpi;
  std::unique_ptr<MpiCommunicator> comm;
  try {
    mpi = std::make_unique<MpiRuntime>(&argc, &argv);
    comm = std::make_unique<MpiCommunicator>();
  } catch (const Error& e) {
    std::cerr << "ddp_train: error: " << e.what() << std::endl;
    return static_cast<int>(e.code());
  }

  CLI::App app{"ddp_train: data-parallel training of sequential networks (run under mpirun)"};
  Options options;
  app.add_option("-c,--config", options.config, "YAML config file")->required();
  app.add_option("--set", options.overrides,
                 "Override a config key: section.key=value (repeatable; list items by index, "
                 "e.g. model.layers.0.units=128)");
  app.add_option("--run-dir", options.run_dir,
                 "Directory for the resolved config and metrics.jsonl (default: runs/<config name>)");
  app.add_option("--progress", options.progress, "Live progress bar on rank 0: auto, on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    if (comm->rank() == 0) app.exit(e);
    return 0;
  } catch (const CLI::ParseError& e) {
    print_error(*comm, std::string(e.what()) + " (see --help)");
    return static_cast<int>(ExitCode::kUsage);
  }
  if (options.run_dir.empty())
    options.run_dir = "runs/" + std::filesystem::path(options.config).stem().string();

  // Setup failures are agreed on by all ranks (run_agreed), so every rank leaves normally with
  // the same exit code. A failure during training may be one rank's alone: that rank ends the
  // whole job so no other rank waits forever in a collective.
  bool training = false;
  try {
    return train(*comm, options, training);
  } catch (const PeerError& e) {
    return static_cast<int>(e.code());
  } catch (const Error& e) {
    print_error(*comm, e.what());
    if (training) comm->abort(static_cast<int>(e.code()));
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    print_error(*comm, e.what());
    comm->abort(static_cast<int>(ExitCode::kRuntime));
  }
}
