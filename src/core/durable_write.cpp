#include "core/durable_write.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace ddp {

namespace {

[[noreturn]] void io_failure(const std::string& path, const std::string& what) {
  throw RuntimeError(path + ": " + what + ": " + std::strerror(errno));
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) io_failure(dir, "cannot open directory to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) io_failure(dir, "cannot sync directory");
}

// Fault injection for tests: DDP_FAULT_KILL_AFTER_BYTES=N makes the writer SIGKILL itself once
// N bytes of a temporary file are written, as a crash in the middle of a checkpoint would.
size_t kill_after_bytes() {
  const char* value = std::getenv("DDP_FAULT_KILL_AFTER_BYTES");
  return value ? std::strtoull(value, nullptr, 10) : SIZE_MAX;
}

}  // namespace

void write_file_durably(const std::string& path, std::span<const std::byte> bytes) {
  static const size_t kill_after = kill_after_bytes();
  const std::filesystem::path target(path);
  const std::string dir = target.parent_path().empty() ? "." : target.parent_path().string();
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) io_failure(temp, "cannot create");
  size_t done = 0;
  while (done < bytes.size()) {
    if (done >= kill_after) ::raise(SIGKILL);
    const size_t chunk = std::min(bytes.size() - done, std::max<size_t>(kill_after - done, 1));
    const ssize_t n = ::write(fd, bytes.data() + done, chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      errno = saved;
      io_failure(temp, "write failed");
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const int saved = errno;
    ::unlink(temp.c_str());
    errno = saved;
    io_failure(temp, "cannot flush to disk");
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    ::unlink(temp.c_str());
    errno = saved;
    io_failure(path, "cannot rename the temporary file over it");
  }
  fsync_directory(dir);
}

}  // namespace ddp
