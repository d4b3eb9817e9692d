#pragma once

#include <string>

#include "comm/communicator.h"

namespace ddp {

// This machine's host name, as the other hosts of a cluster know it ("?" when unknown).
std::string this_host();

// Collective: which ranks run on which host, in rank order of each host's first rank, e.g.
// "h0 (ranks 0-1), h1 (ranks 2-3)"; `hosts` receives their number. Error messages carry it so
// that a reader (and launch/ddp_run.sh) can tell which host went silent.
std::string describe_hosts(Communicator& comm, int& hosts);

}  // namespace ddp
