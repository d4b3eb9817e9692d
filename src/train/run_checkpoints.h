#pragma once
// Note [run checkpoints]: how a run writes its checkpoints and continues from them, for ddp_train
// (--resume) and the C++ and Python APIs' BackupAndRestore callback alike: rank 0 writes each
// checkpoint into a directory while the others wait for it (nobody runs ahead of a half-written
// file), and a run continues from the newest checkpoint there that validates and fits the
// config, which rank 0 finds and every rank restores from rank 0's bytes (no shared file system
// assumed), on any world size (Note [gradient synchronization], TrainingState's positions count
// global batches).

#include <ostream>
#include <string>

#include "comm/communicator.h"
#include "train/config.h"
#include "train/trainer.h"

namespace ddp {

// Collective: the trainer writes its checkpoints into `dir` when `policy` says, keeping the
// newest policy.keep; rank 0 writes them and logs each to `log` (if set).
void write_checkpoints(Communicator& comm, Trainer& trainer, const CheckpointConfig& policy,
                       const std::string& dir, std::ostream* log);

// Collective: restores the checkpoint `file` or, where it is empty, the newest in `dir` that
// validates and does not lie beyond the config's epochs (those passed over are logged). False
// where `dir` holds no checkpoint at all (a fresh start); CheckpointError where none qualifies.
bool resume_run(Communicator& comm, Trainer& trainer, const Config& config, const std::string& dir,
                const std::string& file, std::ostream* log);

}  // namespace ddp
