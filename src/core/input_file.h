#pragma once
// Before an input file is opened: a directory, a FIFO, a device or a socket where a file is
// expected is an error of the reader's type naming the path, not a hang (a FIFO blocks its reader
// forever) or an error from deep inside a library (a directory reads as empty, or as bad_alloc).
// A missing file is left to the reader, which names it with the system's reason.

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "core/machine.h"

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

// The whole of a regular file; throws Error naming the file when it cannot be read, or when it is
// larger than this process's memory (refused by name, not by bad_alloc).
template <class Error>
std::vector<std::byte> read_whole_file(const std::string& path) {
  expect_regular_file<Error>(path);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  const std::streamsize size = in.tellg();
  if (size > 0 && static_cast<uint64_t>(size) > memory_limit_bytes())
    throw Error(path + ": " + std::to_string(size) +
                " bytes do not fit in this process's memory (" +
                std::to_string(memory_limit_bytes()) + " bytes)");
  std::vector<std::byte> bytes(static_cast<size_t>(size > 0 ? size : 0));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(path + ": read error: " + std::strerror(errno));
  return bytes;
}

}  // namespace ddp
