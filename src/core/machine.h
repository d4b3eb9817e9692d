#pragma once
// What this machine can hold: the bound that sizes taken from input are checked against before
// anything that large is allocated (a clear error naming the key or file, not bad_alloc).

#include <unistd.h>

#include <cstdint>

namespace ddp {

inline uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return UINT64_MAX;  // unknown: no bound
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

}  // namespace ddp
