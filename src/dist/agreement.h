#pragma once

#include <exception>
#include <string>

#include "core/error.h"
#include "dist/communicator.h"

namespace ddp {

// An error every rank knows about, so every rank can leave normally. `local()` is true on the
// ranks where it happened (they report it) and false on the others.
class AgreedError : public Error {
 public:
  AgreedError(ExitCode code, const std::string& message, bool local)
      : Error(code, message), local_(local) {}
  bool local() const { return local_; }

 private:
  bool local_;
};

// Runs `fn` on every rank, then agrees on the outcome with one collective: if `fn` threw anywhere,
// every rank throws AgreedError with the worst exit code, so no rank goes on into a collective
// that a failed rank will never join. `fn` must not call collectives itself.
template <class Fn>
void run_agreed(Communicator& comm, Fn&& fn) {
  int local = 0;
  std::string message;
  try {
    fn();
  } catch (const Error& e) {
    local = static_cast<int>(e.code());
    message = e.what();
  } catch (const std::exception& e) {
    local = static_cast<int>(ExitCode::kRuntime);
    message = e.what();
  }
  const int worst = comm.all_reduce_max(local);
  if (local != 0) throw AgreedError(static_cast<ExitCode>(local), message, true);
  if (worst != 0) throw AgreedError(static_cast<ExitCode>(worst), "another rank failed", false);
}

}  // namespace ddp
