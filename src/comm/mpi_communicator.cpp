#include "comm/mpi_communicator.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <sys/statvfs.h>

#include "comm/mpi_check.h"
#include "comm/mpi_piece_queue.h"
#include "comm/ring_all_reduce.h"
#include "comm/shared_window.h"
#include "core/bf16.h"
#include "core/error.h"

namespace ddp {

// Note [eager messages]: Open MPI sends a message up to its transport's eager limit at once and a
// larger one only after a handshake with the receiver. Shared memory (4 KB by default): W1's 22 KB
// of gradients paid that handshake every step; at 32 KB its all-reduce takes 5.5 instead of 11-15
// us and 2-rank W1 runs ~1.4x faster; large buckets are unchanged (bench_allreduce). TCP (64 KB):
// the ring's 256 KB segments (Note [ring all-reduce]) go eagerly under a limit of 260 KB, which
// on the harness's 1 Gbit/s + 2 ms links kept W2 at the 60 KB segments' 14.3k samples/s where the
// handshakes cost 20% (11.5k), and on the unshaped bridge saved W3's ring 15% of its
// communication against 60 KB segments (copies into and out of eager fragments).
// A value the user set (environment or mpirun --mca) wins.
namespace {
void prefer_eager_messages() {
  setenv("OMPI_MCA_btl_vader_eager_limit", "32768", 0);
  setenv("OMPI_MCA_btl_tcp_eager_limit", "266240", 0);
}
}  // namespace

MpiRuntime::MpiRuntime(int* argc, char*** argv) {
  int initialized = 0;
  mpiCheck(MPI_Initialized(&initialized));
  if (!initialized) {
    prefer_eager_messages();
    mpiCheck(MPI_Init(argc, argv));
  }
  mpiCheck(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
}

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

namespace {

void add_bf16(const void* in, void* inout, size_t count) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (size_t i = 0; i < count; ++i) b[i] = to_bf16(from_bf16(a[i]) + from_bf16(b[i]));
}

void add_float(const void* in, void* inout, size_t count) {
  const auto* a = static_cast<const float*>(in);
  auto* b = static_cast<float*>(inout);
  for (size_t i = 0; i < count; ++i) b[i] += a[i];
}

void bf16_sum(void* in, void* inout, int* count, MPI_Datatype* /*type*/) {
  add_bf16(in, inout, static_cast<size_t>(*count));
}

const RingElement kRingFloat{MPI_FLOAT, sizeof(float), &add_float};
const RingElement kRingBf16{MPI_UINT16_T, sizeof(uint16_t), &add_bf16};

}  // namespace

MpiCommunicator::MpiCommunicator(MPI_Comm comm) {
  mpiCheck(MPI_Op_create(&bf16_sum, /*commute=*/1, &bf16_sum_));
  mpiCheck(MPI_Comm_dup(comm, &comm_));
  mpiCheck(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  mpiCheck(MPI_Comm_dup(comm_, &ring_comm_));
  mpiCheck(MPI_Comm_rank(comm_, &rank_));
  mpiCheck(MPI_Comm_size(comm_, &size_));
  MPI_Comm host = MPI_COMM_NULL;
  mpiCheck(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &host));
  mpiCheck(MPI_Comm_rank(host, &local_rank_));
  mpiCheck(MPI_Comm_size(host, &local_size_));
  mpiCheck(MPI_Comm_free(&host));
}

MpiCommunicator::~MpiCommunicator() {
  pieces_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (bf16_sum_ != MPI_OP_NULL) MPI_Op_free(&bf16_sum_);
  if (ring_comm_ != MPI_COMM_NULL) MPI_Comm_free(&ring_comm_);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

namespace {

// MPI counts are int: larger buffers go in chunks of at most chunk_bytes.
template <class T, class Op>
void in_chunks(std::span<T> data, Op op, size_t chunk_bytes = size_t{1} << 30) {
  const size_t chunk = std::max<size_t>(chunk_bytes / sizeof(T), 1);
  for (size_t start = 0; start < data.size(); start += chunk)
    op(data.data() + start, static_cast<int>(std::min(chunk, data.size() - start)));
}

template <class T, class Op>
void in_pieces(std::span<T> data, int ranks, Op op) {
  in_chunks(data, op, all_reduce_piece_bytes(ranks));
}

}  // namespace

// Open MPI backs shared windows with files in /dev/shm, which containers often cap at 64 MB
// (W3 needs 2 x 59 MB at 2 ranks). Too little room there means plain memory and MPI_Allreduce,
// decided by all ranks together, rather than an allocation failure.
std::string MpiCommunicator::shared_memory_shortfall(size_t bytes) {
  struct statvfs fs {};
  const bool unknown = statvfs("/dev/shm", &fs) != 0;
  const double needed = static_cast<double>(bytes) + (64 << 20);
  const double available = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
  const bool fits = unknown || available >= needed;
  if (all_reduce_max(fits ? 0 : 1) == 0) return "";
  char text[160];
  std::snprintf(text, sizeof text,
                "/dev/shm has %.0f MB free on some host, %.0f MB short (docker: --shm-size)",
                available / 1e6, std::max(needed - available, 0.0) / 1e6);
  return text;
}

std::unique_ptr<SharedBuffer> MpiCommunicator::allocate_shared(size_t count, SharedCopies copies,
                                                               std::string& why_not) {
  if (local_size_ != size_) {
    why_not = "the " + std::to_string(size_) + " ranks run on several hosts";
    return nullptr;
  }
  const size_t copies_made = copies == SharedCopies::kOne ? 1 : static_cast<size_t>(size_);
  why_not = shared_memory_shortfall(count * sizeof(float) * copies_made);
  if (!why_not.empty()) return nullptr;
  return std::make_unique<SharedWindow>(comm_, count, copies);
}

std::unique_ptr<Communicator> MpiCommunicator::split_host() {
  MPI_Comm host = MPI_COMM_NULL;
  mpiCheck(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &host));
  auto out = std::make_unique<MpiCommunicator>(host);  // works on a duplicate
  mpiCheck(MPI_Comm_free(&host));
  out->ring_choice_ = ring_choice_;
  return out;
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  MPI_Comm part = MPI_COMM_NULL;
  mpiCheck(MPI_Comm_split(comm_, color, key, &part));
  auto out = std::make_unique<MpiCommunicator>(part);
  mpiCheck(MPI_Comm_free(&part));
  out->ring_choice_ = ring_choice_;
  return out;
}

std::string MpiCommunicator::choose_large_sums(RingChoice choice) {
  ring_choice_ = choice;
  if (size_ == 1) return "";
  const std::string least = std::to_string(size_ * kRingSegmentBytes / 1024) + " KB";
  return ring_for(size_t{1} << 30) ? "sums of " + least + " or more around a ring of " +
                                         std::to_string(kRingSegmentBytes / 1024) + " KB segments"
                                   : "sums by MPI_Allreduce";
}

bool MpiCommunicator::ring_for(size_t bytes) const {
  // Below a segment per rank the ring's 2 (n - 1) steps cost more than the library's
  // latency-bound algorithms for small buffers.
  if (size_ == 1 || bytes < static_cast<size_t>(size_) * kRingSegmentBytes) return false;
  return ring_choice_ == RingChoice::kRing ||
         (ring_choice_ == RingChoice::kAuto && local_size_ < size_);
}

void MpiCommunicator::all_reduce_sum(std::span<float> data) {
  if (ring_for(data.size_bytes()))
    return ring_all_reduce(data.data(), data.size(), kRingFloat, ring_comm_, ring_staging_);
  in_pieces(data, size_, [this](float* p, int n) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_FLOAT, MPI_SUM, comm_));
  });
}

void MpiCommunicator::all_reduce_sum(std::span<double> data) {
  in_pieces(data, size_, [this](double* p, int n) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_DOUBLE, MPI_SUM, comm_));
  });
}

namespace {

class PieceWork final : public Work {
 public:
  PieceWork(MpiPieceQueue& queue, uint64_t ticket) : queue_(queue), ticket_(ticket) {}
  ~PieceWork() override {
    // Reached without wait() only when the step failed; the buffer must outlive the pieces.
    try {
      queue_.wait_through(ticket_);
    } catch (const Error&) {  // the failure that got here is the one to report
    }
  }
  bool test() override { return queue_.progress() >= ticket_; }
  void wait() override { queue_.wait_through(ticket_); }

 private:
  MpiPieceQueue& queue_;
  uint64_t ticket_;
};

}  // namespace

MpiPieceQueue& MpiCommunicator::piece_queue() {
  if (!pieces_) pieces_ = std::make_unique<MpiPieceQueue>(comm_);
  return *pieces_;
}

std::unique_ptr<Work> MpiCommunicator::all_reduce_sum_async(std::span<float> data) {
  MpiPieceQueue& queue = piece_queue();
  return std::make_unique<PieceWork>(
      queue, ring_for(data.size_bytes())
                 ? queue.enqueue_ring(data.data(), data.size(), kRingFloat)
                 : queue.enqueue(data.data(), data.size(), MPI_FLOAT, sizeof(float), MPI_SUM));
}

void MpiCommunicator::all_reduce_sum_bf16(std::span<uint16_t> data) {
  if (ring_for(data.size_bytes()))
    return ring_all_reduce(data.data(), data.size(), kRingBf16, ring_comm_, ring_staging_);
  in_pieces(data, size_, [this](uint16_t* p, int n) {
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, p, n, MPI_UINT16_T, bf16_sum_, comm_));
  });
}

std::unique_ptr<Work> MpiCommunicator::all_reduce_sum_bf16_async(std::span<uint16_t> data) {
  MpiPieceQueue& queue = piece_queue();
  return std::make_unique<PieceWork>(
      queue, ring_for(data.size_bytes()) ? queue.enqueue_ring(data.data(), data.size(), kRingBf16)
                                         : queue.enqueue(data.data(), data.size(), MPI_UINT16_T,
                                                         sizeof(uint16_t), bf16_sum_));
}

int MpiCommunicator::all_reduce_max(int value) {
  mpiCheck(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MAX, comm_));
  return value;
}

void MpiCommunicator::broadcast_bytes(std::span<std::byte> data, int root) {
  in_chunks(data, [this, root](std::byte* p, int n) {
    mpiCheck(MPI_Bcast(p, n, MPI_BYTE, root, comm_));
  });
}

namespace {

// The sharded step's collectives in rounds (Note [all-reduce pieces]): round j carries the j-th
// piece of every rank's part, an all-reduce piece in all. Returns the first element of each part.
std::vector<int> part_offsets(std::span<const int> counts) {
  std::vector<int> offsets(counts.size());
  for (size_t r = 1; r < counts.size(); ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
  return offsets;
}

template <class Round>
void in_rounds(std::span<const int> counts, Round round) {
  const int piece =
      std::max<int>(static_cast<int>(all_reduce_piece_bytes(static_cast<int>(counts.size())) /
                                     sizeof(float) / counts.size()),
                    1);
  const int longest = *std::max_element(counts.begin(), counts.end());
  std::vector<int> sizes(counts.size());
  for (int start = 0; start < longest; start += piece) {
    for (size_t r = 0; r < counts.size(); ++r) sizes[r] = std::clamp(counts[r] - start, 0, piece);
    round(start, std::span<const int>(sizes));
  }
}

}  // namespace

// Around the ring, each rank's part is one of the ring's parts: its reduce-scatter half sums
// part r into rank r's copy of `in`, and the all-gather half sends it to all (Note [ring
// all-reduce]).
std::vector<size_t> MpiCommunicator::ring_parts(std::span<const int> counts) {
  std::vector<size_t> parts{0};
  for (int c : counts) parts.push_back(parts.back() + static_cast<size_t>(c));
  return parts;
}

void MpiCommunicator::reduce_scatter_sum(std::span<float> in, std::span<float> shard,
                                         std::span<const int> counts) {
  if (ring_for(in.size_bytes())) {
    std::vector<size_t> parts = ring_parts(counts);
    const size_t mine = parts[static_cast<size_t>(rank_)];
    ring_all_reduce(in.data(), std::move(parts), RingHalves::kReduceScatter, kRingFloat, ring_comm_,
                    ring_staging_);
    std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(mine), shard.size(), shard.begin());
    return;
  }
  const std::vector<int> offsets = part_offsets(counts);
  std::vector<float> packed;
  in_rounds(counts, [&](int start, std::span<const int> sizes) {
    packed.clear();
    for (size_t r = 0; r < sizes.size(); ++r)
      packed.insert(packed.end(), in.begin() + offsets[r] + start,
                    in.begin() + offsets[r] + start + sizes[r]);
    mpiCheck(MPI_Reduce_scatter(packed.data(), shard.data() + std::min<size_t>(start, shard.size()),
                                sizes.data(), MPI_FLOAT, MPI_SUM, comm_));
  });
}

void MpiCommunicator::all_gather(std::span<float> data, std::span<const int> counts) {
  if (ring_for(data.size_bytes()))
    return ring_all_reduce(data.data(), ring_parts(counts), RingHalves::kAllGather, kRingFloat,
                           ring_comm_, ring_staging_);
  const std::vector<int> offsets = part_offsets(counts);
  std::vector<int> displacements(counts.size());
  in_rounds(counts, [&](int start, std::span<const int> sizes) {
    for (size_t r = 0; r < sizes.size(); ++r) displacements[r] = offsets[r] + start;
    mpiCheck(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data.data(), sizes.data(),
                            displacements.data(), MPI_FLOAT, comm_));
  });
}

void MpiCommunicator::barrier() { mpiCheck(MPI_Barrier(comm_)); }

void MpiCommunicator::abort(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort should not return; make sure of it
}

}  // namespace ddp
