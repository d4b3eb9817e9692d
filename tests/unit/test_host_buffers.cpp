// The CPU backend's buffers (backend/host_buffers.h): zero-filled and aligned for full AVX-512
// vectors whatever their size, and a large buffer costs memory only where it is written, or where
// an optimizer's first update makes its state writable whole. The kernels' per-thread scratch
// (core/scratch.h) is aligned the same way.

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "backend/host_buffers.h"
#include "core/scratch.h"
#include "optim/adam.h"
#include "optim/sgd.h"

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

// Whether this kernel populates pages on request (MADV_POPULATE_WRITE, Linux 5.14).
bool kernel_populates_pages() {
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void* probe = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_NE(probe, MAP_FAILED);
  const bool populates = madvise(probe, page, MADV_POPULATE_WRITE) == 0 || errno != EINVAL;
  munmap(probe, page);
  return populates;
}

// Minor page faults of this thread so far.
long minor_faults() {
  rusage usage{};
  EXPECT_EQ(getrusage(RUSAGE_THREAD, &usage), 0);
  return usage.ru_minflt;
}

// Prepared for writing, a range of a large buffer is resident at once (whole pages; one 2 MB huge
// page either side where transparent huge pages are always on), and still zero; a small buffer
// (heap memory, resident already) keeps its contents.
TEST(HostBuffers, PreparedRangeIsResidentAtOnce) {
  if (!kernel_populates_pages()) GTEST_SKIP() << "kernel without MADV_POPULATE_WRITE";
  const size_t count = size_t{16} << 20;  // 64 MB
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t huge_page = (size_t{2} << 20) / page;
  float* data = allocate_host_buffer(count);
  EXPECT_EQ(resident_pages(data, count), 0u);
  const size_t first = count / 4 + 3, floats = size_t{1} << 20;  // 4 MB, starting mid-page
  prepare_host_memory_for_writing(data + first, floats);
  const size_t range_pages = resident_pages(data + first, floats);
  EXPECT_EQ(range_pages, (floats * sizeof(float) + page - 1) / page + 1);  // straddles a page
  EXPECT_LE(resident_pages(data, count), range_pages + 2 * huge_page);
  for (size_t i = first; i < first + floats; i += 997) ASSERT_EQ(data[i], 0.0f) << i;
  release_host_buffer(data);
  float* small = allocate_host_buffer(1000);
  small[999] = 5;
  prepare_host_memory_for_writing(small, 1000);
  EXPECT_EQ(small[999], 5.0f);
  release_host_buffer(small);
}

// In its first step an optimizer prepares the state of each piece it updates before reading it:
// each state page then faults once, not twice (the zero page mapped for the read, then copied for
// the write), and the state of pieces it does not update (other ranks' rows under split weight
// gradients) stays out of memory.
TEST(HostBuffers, OptimizersPrepareTheirPiecesStateInTheFirstStep) {
  if (!kernel_populates_pages()) GTEST_SKIP() << "kernel without MADV_POPULATE_WRITE";
  const size_t count = size_t{9} << 20;  // 36 MB of floats: fresh pages
  const size_t piece = size_t{1} << 20, first = count / 2;
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t piece_pages = piece * sizeof(float) / page;
  const size_t huge_page = (size_t{2} << 20) / page;
  auto backend = make_cpu_backend();
  std::vector<float> params(piece, 1.0f), grads(piece, 0.5f);
  Sgd sgd(*backend, count, SgdHyper{.momentum = 0.9f});
  Adam adam(*backend, count, AdamHyper{});
  for (Optimizer* optimizer : {static_cast<Optimizer*>(&sgd), static_cast<Optimizer*>(&adam)}) {
    const auto tensors = static_cast<long>(optimizer->state().size());
    optimizer->begin_step();
    const long faults_before = minor_faults();
    ASSERT_TRUE(optimizer->update(first, params, grads, 0.1f, GradCheck::kFinite));
    const long faults = minor_faults() - faults_before;
    // Twice the pages without the preparation; a little slack for the process's own faults.
    EXPECT_LE(faults, tensors * static_cast<long>(piece_pages) * 5 / 4) << optimizer->name();
    for (const StateTensor& tensor : optimizer->state()) {
      EXPECT_EQ(resident_pages(tensor.data.data() + first, piece), piece_pages)
          << optimizer->name() << " " << tensor.name;
      EXPECT_LE(resident_pages(tensor.data.data(), count), piece_pages + 2 * huge_page)
          << optimizer->name() << " " << tensor.name;
      EXPECT_NE(tensor.data[first], 0.0f) << optimizer->name() << " " << tensor.name;
    }
  }
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
