#pragma once
// The C++ API's Specs are YAML mappings, as a config's layers, optimizers and callbacks are.

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <utility>

namespace ddp::keras {

inline YAML::Node spec_map(std::initializer_list<std::pair<const char*, YAML::Node>> entries) {
  YAML::Node node(YAML::NodeType::Map);
  for (const auto& [key, value] : entries) node[key] = value;
  return node;
}

}  // namespace ddp::keras
