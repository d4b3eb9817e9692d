#pragma once
// Before an input file is opened: a directory, a FIFO, a device or a socket where a file is
// expected is an error of the reader's type naming the path, not a hang (a FIFO blocks its reader
// forever) or an error from deep inside a library (a directory reads as empty, or as bad_alloc).
// A missing file is left to the reader, which names it with the system's reason.

#include <filesystem>
#include <string>
#include <system_error>

namespace ddp {

template <class Error>
void expect_regular_file(const std::string& path) {
  std::error_code ec;
  const std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) return;
  if (std::filesystem::is_directory(status)) throw Error(path + ": is a directory, not a file");
  if (!std::filesystem::is_regular_file(status))
    throw Error(path + ": not a regular file (a FIFO, device or socket)");
}

}  // namespace ddp
