#include "train/replica_check.h"

#include <zlib.h>

#include <vector>

#include "core/error.h"

namespace ddp {

void check_replicas(Communicator& comm, ComputeBackend& backend, Sequential& model, int64_t step) {
  if (comm.size() == 1) return;
  // One CRC per tensor: the parameters, then the running statistics (Note [batch statistics]:
  // every rank computes the same ones).
  std::vector<ParamEntry> entries;
  std::vector<uint32_t> mine;
  for (const auto& [tensors, values] : {std::pair{&model.param_entries(), model.params()},
                                        std::pair{&model.buffer_entries(), model.buffers()}}) {
    std::vector<float> host(values.size());
    backend.copy_to_host(values.data(), host.data(), host.size());
    for (const ParamEntry& e : *tensors) {
      const auto* bytes = reinterpret_cast<const Bytef*>(host.data() + e.offset);
      mine.push_back(static_cast<uint32_t>(
          crc32(crc32(0L, Z_NULL, 0), bytes, static_cast<uInt>(e.count * sizeof(float)))));
      entries.push_back(e);
    }
  }
  std::vector<uint32_t> reference = mine;
  comm.broadcast(std::span<uint32_t>(reference), 0);
  // Per tensor, which ranks differ: entry [tensor * size + rank].
  const auto world = static_cast<size_t>(comm.size());
  std::vector<double> differing(entries.size() * world, 0.0);
  for (size_t i = 0; i < entries.size(); ++i)
    differing[i * world + static_cast<size_t>(comm.rank())] = mine[i] != reference[i] ? 1 : 0;
  comm.all_reduce_sum(std::span<double>(differing));
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string ranks;
    int count = 0;
    for (size_t r = 0; r < world; ++r) {
      if (differing[i * world + r] == 0) continue;
      ranks += (count++ ? ", " : "") + std::to_string(r);
    }
    if (count == 0) continue;
    RuntimeError error("replica drift after step " + std::to_string(step) + ": " + entries[i].name +
                       " differs from rank 0 on " + std::to_string(count) + " of " +
                       std::to_string(comm.size()) + " ranks (rank " + ranks + ")");
    error.mark_agreed();  // every rank computed the same verdict
    throw error;
  }
}

}  // namespace ddp
