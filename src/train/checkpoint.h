#pragma once
// Note [checkpoint format]: a checkpoint file is
//   header   (24 bytes)  magic "DDPCKPT1", u32 format version, u32 section count,
//                        u32 CRC-32 of the section table, u32 reserved (0)
//   table    (64 bytes per section)  char name[40] (NUL-padded), u64 offset, u64 size in bytes,
//                                    u32 CRC-32 of the section's bytes, u32 reserved (0)
//   sections at 64-byte aligned offsets:
//     "meta"              UTF-8 JSON: position, run shape, model signature, optimizer, config
//     "params"            float32[param_count], the flat parameter buffer
//     "optimizer.<name>"  float32[param_count] per optimizer state buffer (m, v, velocity)
//     "buffers"           float32[buffer_count], the model's running statistics; only when the
//                         meta's "buffers" signature lists some (batch normalization)
//     "best.params", "best.buffers"  the same of the best epoch so far, where early stopping
//                         restores the best weights (the meta's "callbacks" hold its state)
// All integers and floats are little-endian. Readers reject unknown magic, newer versions, a bad
// table or section checksum, sections that run past the end of the file, and non-zero reserved
// fields or alignment padding: every byte of a file is checked (a flipped one is always found).

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/shape.h"

namespace ddp {

inline constexpr uint32_t kCheckpointVersion = 1;

struct TensorSignature {
  std::string name;
  Shape shape;
  // Note [PyTorch layout]: (rows, h, w, c) when PyTorch orders the tensor (c, h, w); zeros when
  // it stores it as it is. Recorded so that checkpoints export to PyTorch without the model.
  std::array<int64_t, 4> hwc{};
  // The same tensor of the same model (the layout follows from the model).
  bool operator==(const TensorSignature& o) const { return name == o.name && shape == o.shape; }
};

// Everything needed to continue a run exactly where it stopped.
struct TrainingState {
  // Position. The sampler's order is a function of (seed, epoch), so (epoch, step_in_epoch) is
  // its whole state; positions count global batches and so survive a change of world size.
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;
  int64_t completed_steps = 0;
  // Global sums of the epoch so far: the loss, then the metrics' (Note [exact metrics]).
  std::vector<double> epoch_sums;

  // The run that wrote it.
  int world_size = 1;
  std::string batch_mode;  // "global" or "per_rank"
  int64_t global_batch = 0;
  int64_t per_rank_batch = 0;
  uint64_t seed = 0;
  std::vector<TensorSignature> signature;
  bool layouts_recorded = true;  // false for checkpoints written before signatures had hwc
  std::string optimizer;
  int64_t optimizer_steps = 0;
  std::string config_yaml;

  std::vector<float> params;
  std::vector<std::pair<std::string, std::vector<float>>> optimizer_state;
  std::vector<TensorSignature> buffer_signature;  // the model's non-trained state, in order
  std::vector<float> buffers;

  // Note [callback state]: the state of the epoch-end callbacks (Note [early stopping], Note
  // [reduce on plateau]) as JSON by name, and with early stopping's restore_best_weights the best
  // epoch's params and buffers (empty before there is one).
  std::map<std::string, std::string> callbacks;
  std::vector<float> best_params, best_buffers;
};

std::vector<std::byte> encode_checkpoint(const TrainingState& state);
// Throws CheckpointError "<origin>: <section or header>: <problem>".
TrainingState decode_checkpoint(std::span<const std::byte> bytes, const std::string& origin);

// Throws CheckpointError naming the file.
std::vector<std::byte> read_file_bytes(const std::string& path);

// A directory of checkpoints written by rank 0: ckpt-<step>.ddpc files and a `latest` pointer.
class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int64_t keep);

  // Writes the checkpoint durably, points `latest` at it, then deletes all but the newest `keep`.
  std::string save(const TrainingState& state);

  struct Found {
    std::string path;
    std::vector<std::byte> bytes;
    std::vector<std::string> rejected;  // "<file>: <reason>" for newer files passed over
  };
  // Why a checkpoint that validates cannot be resumed from here; empty: it can.
  using Unusable = std::function<std::string(const TrainingState&)>;
  // The newest checkpoint that validates and is not `unusable` (the one `latest` names first).
  // Empty when the directory holds no checkpoint at all; throws CheckpointError when there are
  // some but none qualifies.
  std::optional<Found> newest_valid(const Unusable& unusable = {}) const;

  // Removes the checkpoints, `latest` and writers' temporary files, then the directory if nothing
  // else is left in it (a finished run's backup: Note [run checkpoints]).
  void remove_all() const;

  const std::string& path() const { return dir_; }

 private:
  std::vector<std::string> checkpoints_newest_first() const;
  std::string dir_;
  int64_t keep_;
};

}  // namespace ddp
