#pragma once
// What this process can hold: the bound that sizes taken from input are checked against before
// anything that large is allocated (a clear error naming the key or file, not bad_alloc).

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

namespace ddp {

// Physical memory, or less where `ulimit -v` / `-d` (RLIMIT_AS, RLIMIT_DATA) caps this process:
// a size that fits the machine but not the limit would otherwise end in bad_alloc.
inline uint64_t memory_limit_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  uint64_t bound = pages > 0 && page > 0
                       ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page)
                       : UINT64_MAX;  // unknown: no bound
  for (const int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    rlimit limit{};
    if (getrlimit(resource, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
      bound = std::min<uint64_t>(bound, limit.rlim_cur);
  }
  return bound;
}

}  // namespace ddp
