// The CPU backend's buffers (backend/host_buffers.h): zero-filled and aligned for full AVX-512
// vectors whatever their size, and a large buffer costs memory only where it is written. The
// kernels' per-thread scratch (core/scratch.h) is aligned the same way.

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "backend/host_buffers.h"
#include "core/scratch.h"

namespace ddp {
namespace {

// Pages of [data, data + count) that are resident, from mincore.
size_t resident_pages(const float* data, size_t count) {
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) / page * page;
  const uintptr_t end = reinterpret_cast<uintptr_t>(data + count);
  std::vector<unsigned char> in_core((end - begin + page - 1) / page);
  EXPECT_EQ(mincore(reinterpret_cast<void*>(begin), end - begin, in_core.data()), 0);
  size_t resident = 0;
  for (unsigned char c : in_core) resident += c & 1;
  return resident;
}

TEST(HostBuffers, ZeroFilledAndAlignedSmallAndLarge) {
  for (size_t count :
       {size_t{1}, size_t{1000}, size_t{8388607}, size_t{8388608}, size_t{9000000}}) {
    float* data = allocate_host_buffer(count);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 64, 0u) << count;
    for (size_t i = 0; i < count; i += 997) ASSERT_EQ(data[i], 0.0f) << count << " at " << i;
    EXPECT_EQ(data[count - 1], 0.0f) << count;
    data[count - 1] = 1;  // writable to its last element
    release_host_buffer(data);
  }
}

// A gradient buffer that the update inside backward never writes (Note [update in backward])
// takes no memory: W3's 56 MB a rank.
TEST(HostBuffers, LargeBufferIsResidentOnlyWhereWritten) {
  const size_t count = size_t{16} << 20;  // 64 MB
  float* data = allocate_host_buffer(count);
  EXPECT_EQ(resident_pages(data, count), 0u);
  data[count / 2] = 3;
  // One page, or one 2 MB huge page where transparent huge pages are always on.
  const size_t huge_page = (size_t{2} << 20) / static_cast<size_t>(sysconf(_SC_PAGESIZE));
  EXPECT_GE(resident_pages(data, count), 1u);
  EXPECT_LE(resident_pages(data, count), huge_page);
  EXPECT_EQ(data[count / 2 + 1], 0.0f);
  release_host_buffer(data);
}

// Large std::vectors start 16 bytes into their pages, where every AVX-512 load of a packed panel
// would straddle two cache lines (Note [aligned scratch]): scratch must start on a line whatever
// the vector's own alignment, as it grows, and keep `count` floats writable after the start.
TEST(ScratchBuffers, StartOnACacheLineAndHoldTheCount) {
  std::vector<float> buffer;
  for (size_t count :
       {size_t{1}, size_t{17}, size_t{1000}, size_t{300000}, size_t{2000001}, size_t{5}}) {
    float* data = scratch(buffer, count);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(data) % 64, 0u) << count;
    ASSERT_GE(buffer.data() + buffer.size(), data + count) << count;
    data[count - 1] = 2;  // writable to its last element
  }
}

}  // namespace
}  // namespace ddp
