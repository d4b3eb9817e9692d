#pragma once

#include <exception>
#include <string>

#include "comm/communicator.h"
#include "core/error.h"

namespace ddp {

// Thrown on the ranks that did not fail themselves when another rank did; carries the worst
// exit code so every rank leaves the same way.
class PeerError : public Error {
 public:
  explicit PeerError(ExitCode code) : Error(code, "another rank failed") { mark_agreed(-1); }
};

// Runs `fn` on every rank, then agrees on the outcome with one collective: if `fn` threw anywhere,
// every rank throws (the original error where it happened, PeerError elsewhere), so no rank goes
// on into a collective that a failed rank will never join. `fn` must not call collectives itself.
// The error is reported once: by the lowest rank among those that failed with the worst code.
template <class Fn>
void run_agreed(Communicator& comm, Fn&& fn) {
  int code = 0;
  std::exception_ptr failure;
  try {
    fn();
  } catch (const Error& e) {
    code = static_cast<int>(e.code());
    failure = std::current_exception();
  } catch (const std::exception& e) {
    code = static_cast<int>(ExitCode::kRuntime);
    failure = std::make_exception_ptr(RuntimeError(e.what()));
  }
  // One maximum carries both: the worst code, then (reversed) the lowest rank with it.
  constexpr int kRanks = 1 << 20;
  const int worst = comm.all_reduce_max(code ? code * kRanks + (kRanks - 1 - comm.rank()) : 0);
  const int reporter = kRanks - 1 - worst % kRanks;
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (Error& e) {
      e.mark_agreed(reporter);
      throw;
    }
  }
  if (worst != 0) throw PeerError(static_cast<ExitCode>(worst / kRanks));
}

}  // namespace ddp
