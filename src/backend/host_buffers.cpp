#include "backend/host_buffers.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

namespace ddp {
namespace {

// From this size on a buffer is mapped pages, not heap memory that memset touches whole. Not
// smaller: W2's 2.1 MB buffers mapped so ran 0.95-0.99x as fast at 1 rank in alternated runs
// (0.97x when pages were fresh but offset in the page, 1.00x when touched whole at allocation),
// while glibc's malloc maps buffers this large itself.
constexpr size_t kMappedBytes = size_t{32} << 20;

struct MappedBuffers {
  std::mutex mutex;
  std::unordered_map<void*, size_t> bytes;  // of each mapped buffer, for munmap
};

MappedBuffers& mapped() {
  static MappedBuffers buffers;
  return buffers;
}

}  // namespace

float* allocate_host_buffer(size_t count) {
  const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
  if (bytes >= kMappedBytes) {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    MappedBuffers& m = mapped();
    const std::lock_guard<std::mutex> lock(m.mutex);
    m.bytes.emplace(p, bytes);
    return static_cast<float*>(p);
  }
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return static_cast<float*>(p);
}

void prepare_host_memory_for_writing(float* data, size_t count) {
  if (count == 0) return;
  // Every page that holds a byte of the range is mapped whole, so the rounded range is too.
  static const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data + count) + page - 1) / page * page;
  // A failure leaves the faults to the writes (see .h).
  (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}

void release_host_buffer(float* data) {
  MappedBuffers& m = mapped();
  {
    const std::lock_guard<std::mutex> lock(m.mutex);
    if (const auto it = m.bytes.find(data); it != m.bytes.end()) {
      // Only a pointer this map never returned fails; nothing to recover in a release.
      if (munmap(data, it->second) != 0) std::perror("ddp: release_host_buffer: munmap");
      m.bytes.erase(it);
      return;
    }
  }
  std::free(data);
}

}  // namespace ddp
