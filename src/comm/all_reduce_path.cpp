#include "comm/all_reduce_path.h"

namespace ddp {
namespace {

class SharedMemoryPath final : public AllReducePath {
 public:
  SharedMemoryPath(std::unique_ptr<SharedBuffer> buffer, std::unique_ptr<WireCodec> codec)
      : buffer_(std::move(buffer)), codec_(std::move(codec)) {}
  std::string name() const override { return "shared memory"; }
  std::span<float> grads() override { return buffer_->span(); }

  void all_reduce(const Bucket& b) override {
    codec_->round(grads(), b);
    buffer_->all_reduce_sum(b.offset, b.count);
    codec_->round(grads(), b);
  }
  // Nothing progresses in the background here: the sum is done when the call returns.
  std::unique_ptr<Work> start_all_reduce(const Bucket& b) override {
    all_reduce(b);
    return std::make_unique<CompletedWork>();
  }
  void reduce_scatter(const Bucket& b, std::span<const int> counts, std::span<float>) override {
    buffer_->reduce_scatter_sum(b.offset, counts);
  }
  bool in_place() const override { return true; }

 private:
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
  void reduce_scatter(const Bucket& b, std::span<const int> counts,
                      std::span<float> into) override {
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

std::unique_ptr<AllReducePath> make_communicator_path(Communicator& comm, ComputeBackend& backend,
                                                      size_t count,
                                                      std::unique_ptr<WireCodec> codec) {
  return std::make_unique<CommunicatorPath>(comm, backend, count, std::move(codec));
}

}  // namespace ddp
