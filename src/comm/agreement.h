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
  explicit PeerError(ExitCode code) : Error(code, "another rank failed") { mark_agreed(); }
};

// Runs `fn` on every rank, then agrees on the outcome with one collective: if `fn` threw anywhere,
// every rank throws (the original error where it happened, PeerError elsewhere), so no rank goes
// on into a collective that a failed rank will never join. `fn` must not call collectives itself.
template <class Fn>
void run_agreed(Communicator& comm, Fn&& fn) {
  int local = 0;
  std::exception_ptr failure;
  try {
    fn();
  } catch (const Error& e) {
    local = static_cast<int>(e.code());
    failure = std::current_exception();
  } catch (const std::exception& e) {
    local = static_cast<int>(ExitCode::kRuntime);
    failure = std::make_exception_ptr(RuntimeError(e.what()));
  }
  const int worst = comm.all_reduce_max(local);
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (Error& e) {
      e.mark_agreed();
      throw;
    }
  }
  if (worst != 0) throw PeerError(static_cast<ExitCode>(worst));
}

}  // namespace ddp
