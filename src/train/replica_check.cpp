#include "train/replica_check.h"

#include <zlib.h>

#include <vector>

#include "core/error.h"

namespace ddp {

void check_replicas(Communicator& comm, ComputeBackend& backend, Sequential& model, int64_t step) {
  if (comm.size() == 1) return;
  std::vector<float> host(model.param_count());
  backend.copy_to_host(model.params().data(), host.data(), host.size());
  const auto& entries = model.param_entries();
  std::vector<uint32_t> mine(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto* bytes = reinterpret_cast<const Bytef*>(host.data() + entries[i].offset);
    mine[i] = static_cast<uint32_t>(
        crc32(crc32(0L, Z_NULL, 0), bytes, static_cast<uInt>(entries[i].count * sizeof(float))));
  }
  std::vector<uint32_t> reference = mine;
  comm.broadcast(std::span<uint32_t>(reference), 0);
  std::vector<double> differing(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) differing[i] = mine[i] != reference[i] ? 1 : 0;
  comm.all_reduce_sum(std::span<double>(differing));
  for (size_t i = 0; i < entries.size(); ++i) {
    if (differing[i] == 0) continue;
    throw RuntimeError("replica drift after step " + std::to_string(step) + ": " +
                       entries[i].name + " differs from rank 0 on " +
                       std::to_string(static_cast<int>(differing[i])) + " of " +
                       std::to_string(comm.size()) + " ranks");
  }
}

}  // namespace ddp
