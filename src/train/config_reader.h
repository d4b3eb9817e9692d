#pragma once
// Strict reading of a YAML mapping: every key read is recorded (with its default when absent) in
// a resolved copy, and finish() rejects keys nobody read, so a typo is an error, not a default.

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ddp {

class ConfigNode {
 public:
  // `path` is the dotted key path of `in` ("" for the root), `file` names the config in messages.
  ConfigNode(YAML::Node in, YAML::Node resolved, std::string path, std::string file);

  bool has(const std::string& key) const;
  bool is_list(const std::string& key) const;
  bool is_list_of_lists(const std::string& key) const;  // a list whose first item is a list
  bool is_map(const std::string& key) const;
  template <class T>
  T get(const std::string& key, const T& fallback);
  template <class T>
  T require(const std::string& key);
  // A string that must be one of `allowed`; `fallback` is used when absent unless it is empty.
  std::string choice(const std::string& key, const std::vector<std::string>& allowed,
                     const std::string& fallback = "");
  ConfigNode child(const std::string& key);              // a required mapping
  ConfigNode optional_child(const std::string& key);     // a mapping; absent: all defaults
  std::vector<ConfigNode> list(const std::string& key);  // a required, non-empty list of mappings
  void finish() const;
  std::vector<std::string> keys() const;  // of this mapping, in the file's order

  std::string key_path(const std::string& key) const;
  const std::string& path() const { return path_; }
  // Throws ConfigError "<file>: <path.key>: <message>".
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

 private:
  YAML::Node at(const std::string& key) const;
  // "required <what> is missing", naming a present key that looks like a typo of it.
  std::string missing(const std::string& what, const std::string& key) const;
  template <class T>
  T convert(const std::string& key, const YAML::Node& node) const;

  YAML::Node in_;
  YAML::Node resolved_;
  std::string path_;
  std::string file_;
  std::vector<std::string> used_;
};

// Checks of a value read from `node` at `key`: each returns the value or fails naming the key.
int64_t positive(ConfigNode& node, const std::string& key, int64_t value);        // > 0
double positive_number(ConfigNode& node, const std::string& key, double value);   // > 0
double in_unit_interval(ConfigNode& node, const std::string& key, double value);  // [0, 1)
// Keras' (height, width) arguments: one integer for both, or a list of two; each > 0 (>= 0 where
// `zero_allowed`). `fallback` where the key is absent, else it is required.
std::array<int64_t, 2> height_width(ConfigNode& node, const std::string& key,
                                    const std::optional<std::array<int64_t, 2>>& fallback,
                                    bool zero_allowed = false);
// A number as the error messages show it: std::ostream's default, 6 significant digits (0.1,
// 1e-05).
std::string show_number(double value);

// "a.b.0.c=value": sets that path of `root` to the YAML value, creating mappings as needed.
void apply_override(YAML::Node& root, const std::string& assignment);

}  // namespace ddp
