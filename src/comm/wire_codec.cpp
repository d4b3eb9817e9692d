#include "comm/wire_codec.h"

namespace ddp {
namespace {

class Fp32Codec final : public WireCodec {
 public:
  std::string name() const override { return "fp32"; }
  void all_reduce(Communicator& comm, std::span<float> grads, const Bucket& b) override {
    comm.all_reduce_sum(grads.subspan(b.offset, b.count));
  }
  std::unique_ptr<Work> start_all_reduce(Communicator& comm, std::span<float> grads,
                                         const Bucket& b) override {
    return comm.all_reduce_sum_async(grads.subspan(b.offset, b.count));
  }
  Summands summands() const override { return Summands::kAsStored; }
};

class Bf16Codec final : public WireCodec {
 public:
  // Every bucket has its own stretch of the wire buffer (bucket b at element b.offset), since
  // overlapped buckets are in flight at the same time.
  Bf16Codec(ComputeBackend& backend, size_t grad_count)
      : backend_(backend), wire_(backend, (grad_count + 1) / 2) {}
  std::string name() const override { return "bf16"; }

  void all_reduce(Communicator& comm, std::span<float> grads, const Bucket& b) override {
    comm.all_reduce_sum_bf16(encode(grads, b));
    decode(grads, b);
  }
  std::unique_ptr<Work> start_all_reduce(Communicator& comm, std::span<float> grads,
                                         const Bucket& b) override {
    const std::span<uint16_t> wire = encode(grads, b);
    return std::make_unique<DecodingWork>(comm.all_reduce_sum_bf16_async(wire), *this, grads, b);
  }
  Summands summands() const override { return Summands::kBf16; }

 private:
  // The inner collective, then the widening back into the gradients.
  class DecodingWork final : public Work {
   public:
    DecodingWork(std::unique_ptr<Work> inner, Bf16Codec& codec, std::span<float> grads, Bucket b)
        : inner_(std::move(inner)), codec_(codec), grads_(grads), bucket_(b) {}
    bool test() override { return inner_->test(); }
    void wait() override {
      inner_->wait();
      codec_.decode(grads_, bucket_);
    }

   private:
    std::unique_ptr<Work> inner_;
    Bf16Codec& codec_;
    std::span<float> grads_;
    Bucket bucket_;
  };

  uint16_t* wire_at(const Bucket& b) {
    return reinterpret_cast<uint16_t*>(wire_.data()) + b.offset;
  }
  std::span<uint16_t> encode(std::span<float> grads, const Bucket& b) {
    backend_.to_bf16(grads.data() + b.offset, wire_at(b), b.count);
    return {wire_at(b), b.count};
  }
  void decode(std::span<float> grads, const Bucket& b) {
    backend_.from_bf16(wire_at(b), grads.data() + b.offset, b.count);
  }

  ComputeBackend& backend_;
  DeviceBuffer wire_;  // bf16 values, two per float
};

}  // namespace

std::unique_ptr<WireCodec> make_wire_codec(WireDtype dtype, ComputeBackend& backend,
                                           size_t grad_count) {
  if (dtype == WireDtype::kBf16) return std::make_unique<Bf16Codec>(backend, grad_count);
  return std::make_unique<Fp32Codec>();
}

}  // namespace ddp
