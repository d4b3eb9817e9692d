#pragma once
// Durable whole-file writes for checkpoints and exported weights.

#include <cstddef>
#include <span>
#include <string>

namespace ddp {

// Writes `path` so that a crash at any moment leaves either the old file or the new one: a
// temporary file in the same directory, fsync, rename over `path`, fsync of the directory.
// Throws RuntimeError naming the file (unwritable directory, full disk, ...).
void write_file_durably(const std::string& path, std::span<const std::byte> bytes);

}  // namespace ddp
