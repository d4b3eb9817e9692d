#include "comm/communicator.h"
#include "comm/device_work.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <functional>
#include <memory>
#include <string>

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

// Note [NCCL streams]: collectives run on their own stream. Each one waits (on the GPU, by an
// event) for the compute stream's work queued before it, and the compute stream waits for the
// collective only where its result is needed: at once for the blocking calls, at Work::wait()
// for the asynchronous ones. The host never blocks, and a bucket's all-reduce overlaps the
// backward kernels queued after it (PyTorch's DDP reducer does the same).
class Event {
 public:
  Event() { cudaCheck(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming)); }
  ~Event() { cudaEventDestroy(event_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

class CollectiveWork final : public Work {
 public:
  CollectiveWork(std::shared_ptr<Event> done, cudaStream_t compute)
      : done_(std::move(done)), compute_(compute) {}
  bool test() override {
    const cudaError_t state = cudaEventQuery(done_->get());
    if (state == cudaErrorNotReady) return false;
    cudaCheck(state);
    return true;
  }
  void wait() override { cudaCheck(cudaStreamWaitEvent(compute_, done_->get(), 0)); }

 private:
  std::shared_ptr<Event> done_;
  cudaStream_t compute_;
};

class NcclCommunicator final : public Communicator {
 public:
  // monitor (may be null): the watchdog each collective is handed to (Note [device watchdog]).
  NcclCommunicator(Communicator& host, cudaStream_t compute, DeviceWorkMonitor* monitor)
      : host_(host), compute_(compute), monitor_(monitor) {
    ncclUniqueId id{};
    if (host.rank() == 0) ncclCheck(ncclGetUniqueId(&id));
    host.broadcast(std::span<ncclUniqueId>(&id, 1), 0);
    ncclCheck(ncclCommInitRank(&comm_, host.size(), id, host.rank()));
    cudaCheck(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking));
  }
  ~NcclCommunicator() override {
    if (monitor_) monitor_->forget(this);
    cudaStreamSynchronize(comm_stream_);
    ncclCommDestroy(comm_);
    cudaStreamDestroy(comm_stream_);
  }

  std::string name() const override { return "nccl"; }
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  int local_size() const override { return host_.local_size(); }
  MemoryKind memory() const override { return MemoryKind::kDevice; }
  std::unique_ptr<SharedBuffer> allocate_shared(size_t, SharedCopies,
                                                std::string& why_not) override {
    why_not = "gradients are in GPU memory";
    return nullptr;
  }

  void all_reduce_sum(std::span<float> data) override {
    if (!on_device(data.data())) return host_.all_reduce_sum(data);
    all_reduce_sum_async(data)->wait();
  }
  void all_reduce_sum(std::span<double> data) override {
    if (!on_device(data.data())) return host_.all_reduce_sum(data);
    enqueue("NCCL all-reduce (double)", data.size(), [&](cudaStream_t s) {
      ncclCheck(
          ncclAllReduce(data.data(), data.data(), data.size(), ncclDouble, ncclSum, comm_, s));
    })->wait();
  }
  std::unique_ptr<Work> all_reduce_sum_async(std::span<float> data) override {
    return enqueue("NCCL all-reduce (float)", data.size(), [&](cudaStream_t s) {
      ncclCheck(ncclAllReduce(data.data(), data.data(), data.size(), ncclFloat, ncclSum, comm_, s));
    });
  }
  void all_reduce_sum_bf16(std::span<uint16_t> data) override {
    all_reduce_sum_bf16_async(data)->wait();
  }
  std::unique_ptr<Work> all_reduce_sum_bf16_async(std::span<uint16_t> data) override {
    return enqueue("NCCL all-reduce (bf16)", data.size(), [&](cudaStream_t s) {
      ncclCheck(
          ncclAllReduce(data.data(), data.data(), data.size(), ncclBfloat16, ncclSum, comm_, s));
    });
  }
  int all_reduce_max(int value) override { return host_.all_reduce_max(value); }
  // ZeRO-1's slices differ in length by rank, which ncclReduceScatter/ncclAllGather do not allow:
  // one grouped ncclReduce (ncclBroadcast) per slice, rooted at the rank that owns it, moves the
  // same bytes as the ring collectives.
  void reduce_scatter_sum(std::span<float> in, std::span<float> shard,
                          std::span<const int> counts) override {
    if (!on_device(in.data())) return host_.reduce_scatter_sum(in, shard, counts);
    enqueue("NCCL reduce-scatter (ZeRO-1)", in.size(), [&](cudaStream_t s) {
      ncclCheck(ncclGroupStart());
      size_t offset = 0;
      for (int r = 0; r < size(); ++r) {
        const float* slice = in.data() + offset;
        // Only the root's receive buffer is used; the others name their own slice.
        float* into = r == rank() ? shard.data() : in.data() + offset;
        ncclCheck(ncclReduce(slice, into, static_cast<size_t>(counts[r]), ncclFloat, ncclSum, r,
                             comm_, s));
        offset += static_cast<size_t>(counts[r]);
      }
      ncclCheck(ncclGroupEnd());
    })->wait();
  }
  void all_gather(std::span<float> data, std::span<const int> counts) override {
    if (!on_device(data.data())) return host_.all_gather(data, counts);
    enqueue("NCCL all-gather (ZeRO-1)", data.size(), [&](cudaStream_t s) {
      ncclCheck(ncclGroupStart());
      size_t offset = 0;
      for (int r = 0; r < size(); ++r) {
        float* slice = data.data() + offset;
        ncclCheck(
            ncclBroadcast(slice, slice, static_cast<size_t>(counts[r]), ncclFloat, r, comm_, s));
        offset += static_cast<size_t>(counts[r]);
      }
      ncclCheck(ncclGroupEnd());
    })->wait();
  }
  void broadcast_bytes(std::span<std::byte> data, int root) override {
    if (!on_device(data.data())) return host_.broadcast_bytes(data, root);
    enqueue("NCCL broadcast", data.size(), [&](cudaStream_t s) {
      ncclCheck(ncclBroadcast(data.data(), data.data(), data.size(), ncclUint8, root, comm_, s));
    })->wait();
  }
  void barrier() override {
    cudaCheck(cudaStreamSynchronize(compute_));
    cudaCheck(cudaStreamSynchronize(comm_stream_));
    host_.barrier();
  }
  [[noreturn]] void abort(int exit_code) override {
    ncclCommAbort(comm_);
    host_.abort(exit_code);
    std::_Exit(exit_code);
  }

 private:
  // Queues `collective` on the communication stream after the compute work queued so far, and
  // hands it to the monitor.
  template <class Collective>
  std::unique_ptr<Work> enqueue(const char* what, size_t elements, Collective&& collective) {
    Event ready;
    cudaCheck(cudaEventRecord(ready.get(), compute_));
    cudaCheck(cudaStreamWaitEvent(comm_stream_, ready.get(), 0));
    collective(comm_stream_);
    auto done = std::make_shared<Event>();
    cudaCheck(cudaEventRecord(done->get(), comm_stream_));
    if (monitor_)
      monitor_->track(this, what, elements, poll(done), [comm = comm_] { ncclCommAbort(comm); });
    return std::make_unique<CollectiveWork>(std::move(done), compute_);
  }

  // The collective's state for the watchdog: its event first (a finished one needs nothing
  // else), then NCCL's asynchronous error, which a dead peer or a network failure sets.
  std::function<DeviceWorkState(std::string&)> poll(std::shared_ptr<Event> done) const {
    return [done = std::move(done), comm = comm_](std::string& error) {
      const cudaError_t state = cudaEventQuery(done->get());
      if (state == cudaSuccess) return DeviceWorkState::kDone;
      if (state != cudaErrorNotReady) {
        error = std::string("CUDA: ") + cudaGetErrorString(state);
        return DeviceWorkState::kFailed;
      }
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(comm, &async) == ncclSuccess && async != ncclSuccess &&
          async != ncclInProgress) {
        error =
            std::string("NCCL: ") + ncclGetErrorString(async) + " (" + ncclGetLastError(comm) + ")";
        return DeviceWorkState::kFailed;
      }
      return DeviceWorkState::kPending;
    };
  }

  Communicator& host_;
  cudaStream_t compute_;
  DeviceWorkMonitor* monitor_;
  cudaStream_t comm_stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

extern "C" Communicator* ddp_cuda_make_nccl_communicator(Communicator* host, void* cuda_stream,
                                                         DeviceWorkMonitor* monitor) {
  return new NcclCommunicator(*host, static_cast<cudaStream_t>(cuda_stream), monitor);
}

}  // namespace ddp
