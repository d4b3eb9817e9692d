#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "comm/device_work.h"
#include "train/config.h"
#include "train/trainer.h"

namespace ddp {

// A configured trainer ready to run, shared by ddp_train and ddp_bench.
struct Session {
  Config config;
  std::unique_ptr<ComputeBackend> backend;
  std::unique_ptr<Communicator> device_comm;  // NCCL when training on GPUs, else empty
  std::unique_ptr<Trainer> trainer;
};

// Loads the config (with --set overrides) and the data on every rank, checks that all ranks hold
// the same data, and builds the trainer. Setup errors are agreed on by every rank (run_agreed).
// When run_dir is not empty, rank 0 writes the resolved config there. `validate`, when given, runs
// on rank 0 with the loaded config before anything is written or loaded (throw to refuse). GPU
// collectives are handed to `monitor` (the watchdog; may be null), Note [device watchdog]. `log`
// (rank 0's, may be null) gets a line as each data split starts and finishes loading.
Session open_session(Communicator& comm, const std::string& config_path,
                     const std::vector<std::string>& overrides, const std::string& run_dir,
                     DeviceWorkMonitor* monitor = nullptr,
                     const std::function<void(const Config&)>& validate = {},
                     std::ostream* log = nullptr);

// The same from a parsed config and data already in this rank's memory (the C++ API): checks
// that all ranks hold the same data, chooses the device, builds the trainer. Collective.
Session open_session(Communicator& comm, Config config, Dataset train, std::optional<Dataset> test,
                     DeviceWorkMonitor* monitor = nullptr);

}  // namespace ddp
