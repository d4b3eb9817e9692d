#include "train/run_checkpoints.h"

#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "comm/agreement.h"
#include "train/checkpoint.h"

namespace ddp {
namespace {

// Rank 0's bytes (and their name) on every rank, without assuming a shared file system.
void broadcast_blob(Communicator& comm, std::vector<std::byte>& bytes, std::string& name) {
  uint64_t sizes[2] = {bytes.size(), name.size()};
  comm.broadcast(std::span<uint64_t>(sizes), 0);
  bytes.resize(sizes[0]);
  name.resize(sizes[1]);
  comm.broadcast(std::span<std::byte>(bytes), 0);
  comm.broadcast(std::span<char>(name), 0);
}

}  // namespace

void write_checkpoints(Communicator& comm, Trainer& trainer, const CheckpointConfig& policy,
                       const std::string& dir, std::ostream* log) {
  trainer.set_checkpointing(
      policy, [&comm, log, checkpoints = CheckpointDir(dir, policy.keep)](Trainer& t) mutable {
        const auto start = std::chrono::steady_clock::now();
        const TrainingState state = t.capture();
        // Only rank 0 writes; the others wait here, so nobody runs ahead of a half-written file.
        run_agreed(comm, [&] {
          if (comm.rank() != 0) return;
          const std::string path = checkpoints.save(state);
          const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::steady_clock::now() - start);
          if (log)
            *log << "checkpoint: " << path << " (step " << state.completed_steps << ", "
                 << took.count() << " ms)" << std::endl;
        });
      });
}

bool resume_run(Communicator& comm, Trainer& trainer, const Config& config, const std::string& dir,
                const std::string& file, std::ostream* log) {
  std::vector<std::byte> bytes;
  std::string origin;
  run_agreed(comm, [&] {
    if (comm.rank() != 0) return;
    if (!file.empty()) {
      origin = file;
      bytes = read_file_bytes(origin);
      decode_checkpoint(bytes, origin);
      return;
    }
    const CheckpointDir checkpoints(dir, config.checkpoint.keep);
    // A checkpoint past this config's end belongs to a longer run (say, of 20 epochs where the
    // config now asks for 8): resuming it would train nothing and report that run's results.
    const int64_t epochs = config.training.epochs;
    std::optional<CheckpointDir::Found> found =
        checkpoints.newest_valid([epochs](const TrainingState& s) {
          const bool beyond = s.epoch > epochs || (s.epoch == epochs && s.step_in_epoch > 0);
          return beyond ? "epoch " + std::to_string(s.epoch + (s.step_in_epoch > 0)) +
                              " is beyond training.epochs (" + std::to_string(epochs) + ")"
                        : std::string();
        });
    if (!found) {
      if (log) *log << "resume: no checkpoint in " << dir << ", starting from scratch\n";
      return;
    }
    if (log)
      for (const std::string& reason : found->rejected)
        *log << "resume: skipping checkpoint " << reason << "\n";
    origin = found->path;
    bytes = std::move(found->bytes);
  });
  broadcast_blob(comm, bytes, origin);
  if (bytes.empty()) return false;
  run_agreed(comm, [&] { trainer.restore(decode_checkpoint(bytes, origin), origin); });
  if (log)
    *log << "resume: continuing from " << origin << " at step " << trainer.completed_steps()
         << "\n";
  return true;
}

}  // namespace ddp
