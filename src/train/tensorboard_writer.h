#pragma once
// Note [TensorBoard events]: with logging.tensorboard, rank 0 writes TensorBoard's event files
// under <run dir>/tensorboard: TFRecord framing (little-endian length, masked CRC-32C of the
// length, the record, masked CRC-32C of the record) around Event messages encoded by protobuf
// from TensorFlow's own schema (tensorboard_event.proto). Scalars are logged against the global
// step, per-epoch ones at the epoch's last step. A resumed run writes a new file that starts with
// SessionLog START at the first step it will train, which makes TensorBoard drop what an earlier
// file logged from that step on (past the checkpoint), so no step is shown twice.

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

namespace ddp {

// The CRC-32C (Castagnoli) of `bytes`, masked as TFRecord stores it.
uint32_t masked_crc32c(std::span<const std::byte> bytes);

class TensorBoardWriter {
 public:
  // Creates `dir` and a new events file in it; start_step > 0: a resumed run (SessionLog START).
  // Throws RuntimeError naming the file when it cannot be written.
  TensorBoardWriter(const std::string& dir, int64_t start_step);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  void scalar(std::string_view tag, int64_t step, double value);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& event);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace ddp
