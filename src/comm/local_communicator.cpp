#include <algorithm>
#include <cstdlib>

#include "comm/communicator.h"

namespace ddp {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  std::string name() const override { return "local"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_reduce_sum(std::span<float>) override {}
  void all_reduce_sum(std::span<double>) override {}
  std::unique_ptr<Work> all_reduce_sum_async(std::span<float>) override {
    return std::make_unique<CompletedWork>();
  }
  std::unique_ptr<SharedBuffer> allocate_shared(size_t, SharedCopies,
                                                std::string& why_not) override {
    why_not = "one process, nothing to share";
    return nullptr;
  }
  void all_reduce_sum_bf16(std::span<uint16_t>) override {}
  std::unique_ptr<Work> all_reduce_sum_bf16_async(std::span<uint16_t>) override {
    return std::make_unique<CompletedWork>();
  }
  int all_reduce_max(int value) override { return value; }
  void reduce_scatter_sum(std::span<float> in, std::span<float> shard,
                          std::span<const int>) override {
    std::copy(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(shard.size()), shard.begin());
  }
  void all_gather(std::span<float>, std::span<const int>) override {}
  void broadcast_bytes(std::span<std::byte>, int) override {}
  void barrier() override {}
  [[noreturn]] void abort(int exit_code) override { std::_Exit(exit_code); }
};

}  // namespace

std::unique_ptr<Communicator> make_local_communicator() {
  return std::make_unique<LocalCommunicator>();
}

}  // namespace ddp
