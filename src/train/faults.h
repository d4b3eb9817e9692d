#pragma once
// Fault injection for the reliability tests (ddp_train --fault-inject SPEC, repeatable):
//   stall@rank=1,step=5,seconds=30   rank 1 sleeps before step 5 (the watchdog test)
//   kill@rank=1,step=40,once=FILE    rank 1 SIGKILLs itself before step 40; with `once`, only if
//                                    FILE does not exist yet, which it then creates (restarts)
//   perturb@rank=1,step=3            rank 1 changes one parameter before step 3 (drift test)
// Steps count completed optimizer steps, as in checkpoints.

#include <cstdint>
#include <string>
#include <vector>

namespace ddp {

class Trainer;

struct Fault {
  std::string kind;  // stall, kill, perturb
  int rank = 0;
  int64_t step = 0;
  double seconds = 0;
  std::string once;
};

// Throws ConfigError naming the spec.
Fault parse_fault(const std::string& spec);
void inject_faults(const std::vector<Fault>& faults, int rank, int64_t step, Trainer& trainer);

}  // namespace ddp
