#include "comm/all_reduce_path.h"

#include <stdexcept>
#include <vector>

namespace ddp {
namespace {

class SharedMemoryPath final : public AllReducePath {
 public:
  SharedMemoryPath(std::unique_ptr<SharedBuffer> buffer, std::unique_ptr<WireCodec> codec)
      : buffer_(std::move(buffer)), codec_(std::move(codec)) {}
  std::string name() const override { return "shared memory"; }
  std::span<float> grads() override { return buffer_->span(); }

  void all_reduce(const Bucket& b) override {
    buffer_->all_reduce_sum(b.offset, b.count, codec_->summands());
  }
  // Nothing progresses in the background here: the sum is done when the call returns.
  std::unique_ptr<Work> start_all_reduce(const Bucket& b) override {
    all_reduce(b);
    return std::make_unique<CompletedWork>();
  }
  void reduce_scatter(const Bucket& b, std::span<const int> counts, std::span<float>,
                      const SharedBuffer::PieceFn& consume = {}) override {
    buffer_->reduce_scatter_sum(b.offset, counts, Summands::kAsStored, consume);  // fp32 only
  }
  bool in_place() const override { return true; }

 private:
  std::unique_ptr<SharedBuffer> buffer_;
  std::unique_ptr<WireCodec> codec_;
};

class HierarchicalPath final : public AllReducePath {
 public:
  HierarchicalPath(std::unique_ptr<Communicator> host, std::unique_ptr<Communicator> across,
                   std::unique_ptr<SharedBuffer> buffer, std::unique_ptr<WireCodec> codec)
      : host_(std::move(host)),
        across_(std::move(across)),
        buffer_(std::move(buffer)),
        codec_(std::move(codec)) {}
  std::string name() const override {
    return "shared memory within hosts, " + across_->name() + " across";
  }
  std::span<float> grads() override { return buffer_->span(); }

  void all_reduce(const Bucket& b) override {
    const auto parts = static_cast<size_t>(host_->size());
    const auto me = static_cast<size_t>(host_->rank());
    std::vector<int> counts(parts);
    for (size_t l = 0; l < parts; ++l)
      counts[l] = static_cast<int>(b.count * (l + 1) / parts - b.count * l / parts);
    const Bucket mine{b.offset + b.count * me / parts, static_cast<size_t>(counts[me])};
    // The host's sums of rounded summands; the codec rounds them as it sends them across.
    buffer_->reduce_scatter_sum(b.offset, counts, codec_->summands());
    // Every rank of `across` owns the same part index, hence the same (possibly empty) part.
    if (mine.count > 0) codec_->all_reduce(*across_, grads(), mine);
    // Every part now holds what the wire carried: nothing to round after the all-gather.
    buffer_->all_gather(b.offset, counts);
  }
  std::unique_ptr<Work> start_all_reduce(const Bucket& b) override {
    all_reduce(b);
    return std::make_unique<CompletedWork>();
  }
  void reduce_scatter(const Bucket&, std::span<const int>, std::span<float>,
                      const SharedBuffer::PieceFn& = {}) override {
    throw std::logic_error("HierarchicalPath: ZeRO-1 is refused by make_grad_sync");
  }
  bool in_place() const override { return false; }

 private:
  std::unique_ptr<Communicator> host_;
  std::unique_ptr<Communicator> across_;
  std::unique_ptr<SharedBuffer> buffer_;
  std::unique_ptr<WireCodec> codec_;
};

class CommunicatorPath final : public AllReducePath {
 public:
  CommunicatorPath(Communicator& comm, ComputeBackend& backend, size_t count,
                   std::unique_ptr<WireCodec> codec)
      : comm_(comm), grads_(backend, count), codec_(std::move(codec)) {}
  std::string name() const override { return comm_.name(); }
  std::span<float> grads() override { return grads_.span(); }
  void all_reduce(const Bucket& b) override { codec_->all_reduce(comm_, grads(), b); }
  std::unique_ptr<Work> start_all_reduce(const Bucket& b) override {
    return codec_->start_all_reduce(comm_, grads(), b);
  }
  void reduce_scatter(const Bucket& b, std::span<const int> counts, std::span<float> into,
                      const SharedBuffer::PieceFn& consume = {}) override {
    if (consume)
      throw std::logic_error("CommunicatorPath: reduce-scatter pieces need shared memory");
    comm_.reduce_scatter_sum(grads().subspan(b.offset, b.count), into, counts);
  }
  bool in_place() const override { return false; }

 private:
  Communicator& comm_;
  DeviceBuffer grads_;
  std::unique_ptr<WireCodec> codec_;
};

}  // namespace

std::unique_ptr<AllReducePath> make_shared_memory_path(std::unique_ptr<SharedBuffer> buffer,
                                                       std::unique_ptr<WireCodec> codec) {
  return std::make_unique<SharedMemoryPath>(std::move(buffer), std::move(codec));
}

std::unique_ptr<AllReducePath> make_hierarchical_path(std::unique_ptr<Communicator> host,
                                                      std::unique_ptr<Communicator> across,
                                                      std::unique_ptr<SharedBuffer> buffer,
                                                      std::unique_ptr<WireCodec> codec) {
  return std::make_unique<HierarchicalPath>(std::move(host), std::move(across), std::move(buffer),
                                            std::move(codec));
}

std::unique_ptr<AllReducePath> make_communicator_path(Communicator& comm, ComputeBackend& backend,
                                                      size_t count,
                                                      std::unique_ptr<WireCodec> codec) {
  return std::make_unique<CommunicatorPath>(comm, backend, count, std::move(codec));
}

}  // namespace ddp
