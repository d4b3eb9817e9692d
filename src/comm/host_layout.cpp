#include "comm/host_layout.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <span>
#include <vector>

namespace ddp {

std::string this_host() {
  std::array<char, 256> name{};
  if (gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "?";
  return name.data();
}

namespace {

// "ranks 0-1, 4" from sorted ranks: contiguous runs as ranges.
std::string rank_ranges(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (size_t i = 0; i < ranks.size();) {
    size_t end = i;
    while (end + 1 < ranks.size() && ranks[end + 1] == ranks[end] + 1) ++end;
    if (i > 0) text += ", ";
    text += std::to_string(ranks[i]);
    if (end > i) {
      text += '-';
      text += std::to_string(ranks[end]);
    }
    i = end + 1;
  }
  return text;
}

}  // namespace

std::string describe_hosts(Communicator& comm, int& hosts) {
  // One fixed-size broadcast per rank: start-up only, and the interface needs no byte gather.
  std::vector<std::string> names(static_cast<size_t>(comm.size()));
  const std::string mine = this_host();
  for (int r = 0; r < comm.size(); ++r) {
    std::array<char, 256> name{};
    if (r == comm.rank()) std::memcpy(name.data(), mine.data(), std::min(mine.size(), size_t{255}));
    comm.broadcast_bytes(std::as_writable_bytes(std::span(name)), r);
    name.back() = '\0';
    names[static_cast<size_t>(r)] = name.data();
  }
  std::vector<std::pair<std::string, std::vector<int>>> by_host;
  for (int r = 0; r < comm.size(); ++r) {
    const std::string& name = names[static_cast<size_t>(r)];
    auto it = std::find_if(by_host.begin(), by_host.end(),
                           [&](const auto& entry) { return entry.first == name; });
    if (it == by_host.end()) it = by_host.insert(by_host.end(), {name, {}});
    it->second.push_back(r);
  }
  hosts = static_cast<int>(by_host.size());
  std::string text;
  for (const auto& [name, ranks] : by_host) {
    if (!text.empty()) text += ", ";
    text += name + " (" + rank_ranges(ranks) + ")";
  }
  return text;
}

}  // namespace ddp
