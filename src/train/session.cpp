#include "train/session.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "comm/agreement.h"
#include "core/error.h"
#include "data/data_source.h"
#include "runtime/device.h"

namespace ddp {
namespace {

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

// Loading a large file takes seconds: a line before (so a silent start does not look hung) and
// one after with what was read.
Dataset load_reporting(const DataSourceConfig& source, int rank, std::ostream* log) {
  const std::string what = source.path.substr(source.path.find('.') + 1);  // "train", "test"
  if (log && source.type != "synthetic")
    *log << "data: loading " << what << " (" << source.type << ": "
         << expand_rank(source.type == "idx" ? source.images : source.file, rank) << ")"
         << std::endl;
  const auto start = std::chrono::steady_clock::now();
  Dataset data = load_dataset(source, rank);
  if (log) {
    char line[160];
    std::snprintf(line, sizeof line, "data: %s: %lld samples, %lld features (%.2f s)", what.c_str(),
                  static_cast<long long>(data.size()),
                  static_cast<long long>(data.sample_shape.numel()),
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    *log << line << std::endl;
  }
  return data;
}

}  // namespace

Session open_session(Communicator& comm, const std::string& config_path,
                     const std::vector<std::string>& overrides, const std::string& run_dir,
                     DeviceWorkMonitor* monitor, const std::function<void(const Config&)>& validate,
                     std::ostream* log) {
  Config config;
  Dataset train;
  std::optional<Dataset> test;
  // Only local work here; failures are agreed on before any rank moves on.
  run_agreed(comm, [&] {
    config = load_config(config_path, overrides);
    if (comm.rank() == 0 && validate) validate(config);
    if (comm.rank() == 0 && !run_dir.empty()) write_resolved_config(config, run_dir);
    train = load_reporting(config.train_data, comm.rank(), log);
    if (config.test_data) test = load_reporting(*config.test_data, comm.rank(), log);
  });
  return open_session(comm, std::move(config), std::move(train), std::move(test), monitor);
}

Session open_session(Communicator& comm, Config config, Dataset train, std::optional<Dataset> test,
                     DeviceWorkMonitor* monitor) {
  check_same_data(comm, train);
  if (test) check_same_data(comm, *test);
  Session session;
  session.config = std::move(config);
  const TrainingConfig& t = session.config.training;
  run_agreed(comm, [&] {
    session.backend = choose_device(t.device, t.flush_denormals, t.matmul, comm.local_rank(),
                                    comm.local_size(), static_cast<int>(t.threads_per_rank));
  });
  session.device_comm = make_device_communicator(comm, *session.backend, monitor);
  Communicator& trainer_comm = session.device_comm ? *session.device_comm : comm;
  session.trainer = std::make_unique<Trainer>(session.config, trainer_comm, *session.backend,
                                              std::move(train), std::move(test));
  return session;
}

}  // namespace ddp
