#pragma once
// Note [mapped features]: an uncompressed .npy file of float32 (little-endian) or uint8 features,
// or an uncompressed IDX image file, is read in place through a read-only shared mapping instead of
// being copied into each rank's memory, so the ranks of a host hold one copy of the data between
// them, in the page cache (8 ranks of a GPU workstation would otherwise hold 8). Pages come in as
// batches first touch them (the fingerprint and the finiteness check read the whole file once at
// start). A file that is truncated while mapped would make the next read of a lost page raise
// SIGBUS: the handler installed with the first mapping names the file in a one-line error and exits
// with the bad-data code (3) instead of crashing; any other SIGBUS goes to the handler installed
// before it (Open MPI's, Python's, or the default action). A file rewritten in place keeps its size
// and the mapping shows the new bytes as they land: the trainer calls check_unchanged() before
// each epoch and each checkpoint, so a run stops, naming the file, before a checkpoint could hold
// steps trained on a file that changed under it. A file replaced by another (a rename, as most
// tools write) leaves the mapping on the old one, whose bytes stay as they were.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace ddp {

class MappedFile {
 public:
  // Maps the whole of `path` read-only; throws DataError naming it.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Throws DataError naming the file if it was modified in place since it was mapped (its
  // modification time or size differ on the same inode).
  void check_unchanged() const;

 private:
  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  // The mapped file's identity and last modification, as mapped.
  uint64_t device_ = 0, inode_ = 0;
  int64_t modified_seconds_ = 0, modified_nanoseconds_ = 0;
};

}  // namespace ddp
