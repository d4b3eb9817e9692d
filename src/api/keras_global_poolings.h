#pragma once
// ddp-trainer's global pooling layer types and the Keras classes they are, both ways (Note [Keras
// model config]).

#include <string>
#include <utility>
#include <vector>

namespace ddp::keras {

// The global poolings' layer types and Keras classes.
inline const std::vector<std::pair<std::string, std::string>>& global_poolings() {
  static const std::vector<std::pair<std::string, std::string>> table = {
      {"global_average_pooling2d", "GlobalAveragePooling2D"},
      {"global_max_pooling2d", "GlobalMaxPooling2D"},
      {"global_average_pooling1d", "GlobalAveragePooling1D"},
      {"global_max_pooling1d", "GlobalMaxPooling1D"}};
  return table;
}
inline std::string keras_global_pooling(const std::string& type) {
  for (const auto& [ours, theirs] : global_poolings())
    if (ours == type) return theirs;
  return "";
}
inline std::string global_pooling_type(const std::string& class_name) {
  for (const auto& [ours, theirs] : global_poolings())
    if (theirs == class_name) return ours;
  return "";
}

}  // namespace ddp::keras
