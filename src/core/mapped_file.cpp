#include "core/mapped_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "core/input_file.h"

namespace ddp {
namespace {

// The live mappings, for the SIGBUS handler: fixed slots it can read without locks or
// allocation. A slot is published by storing `end` last and retired by clearing it first.
struct Slot {
  std::atomic<uintptr_t> begin{0}, end{0};
  std::array<char, 512> message{};  // the whole error line
  size_t length = 0;
};
std::array<Slot, 64> slots;
std::mutex slots_mutex;
struct sigaction previous_action;  // whoever handled SIGBUS before (Open MPI, Python, default)

void on_sigbus(int, siginfo_t* info, void*) {
  const auto address = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const Slot& slot : slots) {
    if (address >= slot.begin.load() && address < slot.end.load()) {
      [[maybe_unused]] const ssize_t ignored = write(2, slot.message.data(), slot.length);
      _exit(static_cast<int>(ExitCode::kData));
    }
  }
  // Not a mapped data file's page: the handler before ours takes the fault, which recurs as the
  // faulting access runs again (a signal sent by kill or raise is sent again).
  sigaction(SIGBUS, &previous_action, nullptr);
  if (info->si_code <= 0) raise(SIGBUS);
}

void install_handler_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, &previous_action);
  });
}

void publish(const std::string& path, const std::byte* data, size_t size) {
  install_handler_once();
  const std::lock_guard lock(slots_mutex);
  for (Slot& slot : slots) {
    if (slot.end.load() != 0) continue;
    const std::string line = error_line_prefix() + "ddp-trainer: error: " + path +
                             ": the file changed (shrank) while training read it\n";
    slot.length = std::min(line.size(), slot.message.size());
    std::memcpy(slot.message.data(), line.data(), slot.length);
    slot.begin.store(reinterpret_cast<uintptr_t>(data));
    slot.end.store(reinterpret_cast<uintptr_t>(data) + size);
    return;
  }
  // More live mappings than slots: this one keeps SIGBUS's default action.
}

void retire(const std::byte* data) {
  const std::lock_guard lock(slots_mutex);
  for (Slot& slot : slots)
    if (slot.begin.load() == reinterpret_cast<uintptr_t>(data) && slot.end.load() != 0) {
      slot.end.store(0);
      slot.begin.store(0);
    }
}

}  // namespace

MappedFile::MappedFile(const std::string& path) : path_(path) {
  expect_regular_file<DataError>(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(path + ": cannot open: " + std::strerror(errno));
  struct stat status {};
  if (fstat(fd, &status) != 0) {
    const int error = errno;
    ::close(fd);
    throw DataError(path + ": cannot stat: " + std::strerror(error));
  }
  size_ = static_cast<size_t>(status.st_size);
  device_ = status.st_dev;
  inode_ = status.st_ino;
  modified_seconds_ = status.st_mtim.tv_sec;
  modified_nanoseconds_ = status.st_mtim.tv_nsec;
  if (size_ > 0) {
    void* mapped = mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) {
      const int error = errno;
      ::close(fd);
      throw DataError(path + ": cannot map: " + std::strerror(error));
    }
    data_ = static_cast<const std::byte*>(mapped);
  }
  ::close(fd);  // the mapping keeps the file
  if (data_) publish(path_, data_, size_);
}

void MappedFile::check_unchanged() const {
  struct stat now {};
  // Gone, or another file under the name: the mapping still holds the bytes it had.
  if (::stat(path_.c_str(), &now) != 0 || now.st_dev != device_ || now.st_ino != inode_) return;
  if (static_cast<size_t>(now.st_size) != size_ || now.st_mtim.tv_sec != modified_seconds_ ||
      now.st_mtim.tv_nsec != modified_nanoseconds_)
    throw DataError(path_ + ": the file was modified while training read it (rewritten in place)");
}

MappedFile::~MappedFile() {
  if (!data_) return;
  retire(data_);
  munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace ddp
