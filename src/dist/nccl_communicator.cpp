#include "dist/communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include "backend/cuda_check.h"
#include "core/error.h"

namespace ddp {
namespace {

bool on_device(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error a host pointer may leave
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice;
}

// The all-reduce is already ordered on the stream before the optimizer's kernels.
class StreamOrderedWork final : public Work {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& host, cudaStream_t stream) : host_(host), stream_(stream) {
    ncclUniqueId id{};
    if (host.rank() == 0) ncclCheck(ncclGetUniqueId(&id));
    host.broadcast(std::span<ncclUniqueId>(&id, 1), 0);
    ncclCheck(ncclCommInitRank(&comm_, host.size(), id, host.rank()));
  }
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }

  std::string name() const override { return "nccl"; }
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  int local_size() const override { return host_.local_size(); }

  void all_reduce_sum(std::span<float> data) override {
    if (!on_device(data.data())) return host_.all_reduce_sum(data);
    ncclCheck(
        ncclAllReduce(data.data(), data.data(), data.size(), ncclFloat, ncclSum, comm_, stream_));
  }
  void all_reduce_sum(std::span<double> data) override {
    if (!on_device(data.data())) return host_.all_reduce_sum(data);
    ncclCheck(
        ncclAllReduce(data.data(), data.data(), data.size(), ncclDouble, ncclSum, comm_, stream_));
  }
  std::unique_ptr<Work> all_reduce_sum_async(std::span<float> data) override {
    all_reduce_sum(data);
    return std::make_unique<StreamOrderedWork>();
  }
  void all_reduce_sum_bf16(std::span<uint16_t>) override {
    throw RuntimeError("wire_dtype: bf16 is not implemented for NCCL yet");
  }
  std::unique_ptr<Work> all_reduce_sum_bf16_async(std::span<uint16_t>) override {
    throw RuntimeError("wire_dtype: bf16 is not implemented for NCCL yet");
  }
  int all_reduce_max(int value) override { return host_.all_reduce_max(value); }
  void reduce_scatter_sum(std::span<const float>, std::span<float>, std::span<const int>) override {
    throw RuntimeError("ZeRO-1 is not implemented for NCCL yet");
  }
  void all_gather(std::span<float>, std::span<const int>) override {
    throw RuntimeError("ZeRO-1 is not implemented for NCCL yet");
  }
  void broadcast_bytes(std::span<std::byte> data, int root) override {
    if (!on_device(data.data())) return host_.broadcast_bytes(data, root);
    ncclCheck(
        ncclBroadcast(data.data(), data.data(), data.size(), ncclUint8, root, comm_, stream_));
  }
  void barrier() override {
    cudaCheck(cudaStreamSynchronize(stream_));
    host_.barrier();
  }
  [[noreturn]] void abort(int exit_code) override {
    ncclCommAbort(comm_);
    host_.abort(exit_code);
    std::_Exit(exit_code);
  }

 private:
  Communicator& host_;
  cudaStream_t stream_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

extern "C" Communicator* ddp_cuda_make_nccl_communicator(Communicator* host, void* cuda_stream) {
  return new NcclCommunicator(*host, static_cast<cudaStream_t>(cuda_stream));
}

}  // namespace ddp
