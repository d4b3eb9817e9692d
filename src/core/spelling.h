#pragma once
// "Did you mean": the candidate a mistyped word most likely meant.

#include <optional>
#include <string>
#include <vector>

namespace ddp {

// The candidate closest to `word` by edit distance (insertions, deletions, substitutions and
// swaps of neighbours), if it is close enough to be a typo: at most one edit per three
// characters, at least one. Ties go to the first candidate.
std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates);

}  // namespace ddp
