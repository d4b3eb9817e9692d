#include "train/config_reader.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/spelling.h"
#include "core/utf8.h"

namespace ddp {
namespace {

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, int64_t>) return "an integer";
  if constexpr (std::is_same_v<T, double>) return "a number";
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_same_v<T, std::vector<int64_t>>) return "a list of integers";
  if constexpr (std::is_same_v<T, std::vector<double>>) return "a list of numbers";
  if constexpr (std::is_same_v<T, std::vector<std::string>>) return "a list of strings";
  return "a value";
}

// std::vector<E>: a YAML list whose items are checked one by one as E.
template <class T>
struct ListOf : std::false_type {};
template <class E>
struct ListOf<std::vector<E>> : std::true_type {
  using Element = E;
};

size_t list_index(const YAML::Node& list, const std::string& key, const std::string& path) {
  size_t index = 0;
  try {
    index = std::stoul(key);
  } catch (const std::exception&) {
    throw ConfigError("--set " + path + ": '" + key + "' is not a list index");
  }
  if (index >= list.size())
    throw ConfigError("--set " + path + ": index " + key + " is out of range (list of " +
                      std::to_string(list.size()) + ")");
  return index;
}

std::string show(const YAML::Node& node) {
  if (node.IsScalar())
    return "'" + (is_utf8(node.Scalar()) ? node.Scalar() : escaped(node.Scalar())) + "'";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "null";
}

}  // namespace

ConfigNode::ConfigNode(YAML::Node in, YAML::Node resolved, std::string path, std::string file)
    : in_(std::move(in)),
      resolved_(std::move(resolved)),
      path_(std::move(path)),
      file_(std::move(file)) {
  // YAML forbids a key twice in one mapping, but yaml-cpp keeps the first silently.
  if (!in_.IsMap()) return;
  std::vector<std::pair<std::string, int>> seen;  // key, line (0-based; -1 from --set)
  for (const auto& entry : in_) {
    const std::string key = entry.first.Scalar();
    const int line = entry.first.Mark().line;
    for (const auto& [other, other_line] : seen)
      if (other == key)
        fail(key, "duplicate key (lines " + std::to_string(other_line + 1) + " and " +
                      std::to_string(line + 1) + ")");
    seen.emplace_back(key, line);
  }
}

std::string ConfigNode::key_path(const std::string& key) const {
  return path_.empty() ? key : path_ + "." + key;
}

void ConfigNode::fail(const std::string& key, const std::string& message) const {
  const std::string where = key.empty() ? path_ : key_path(key);
  throw ConfigError(file_ + ": " + (where.empty() ? "" : where + ": ") + message);
}

YAML::Node ConfigNode::at(const std::string& key) const {
  if (!in_.IsMap()) return YAML::Node();
  for (const auto& entry : in_)
    if (entry.first.Scalar() == key) return entry.second;
  return YAML::Node();
}

bool ConfigNode::has(const std::string& key) const {
  const YAML::Node node = at(key);
  return node.IsDefined() && !node.IsNull();
}

bool ConfigNode::is_list(const std::string& key) const { return at(key).IsSequence(); }
bool ConfigNode::is_list_of_lists(const std::string& key) const {
  const YAML::Node node = at(key);
  return node.IsSequence() && node.size() > 0 && node[0].IsSequence();
}

bool ConfigNode::is_map(const std::string& key) const { return has(key) && at(key).IsMap(); }

template <class T>
T ConfigNode::convert(const std::string& key, const YAML::Node& node) const {
  if (ListOf<T>::value == node.IsScalar())
    fail(key, std::string("expected ") + type_name<T>() + ", got " + show(node));
  if constexpr (ListOf<T>::value) {
    if (!node.IsSequence())
      fail(key, std::string("expected ") + type_name<T>() + ", got " + show(node));
    // Name the item that is wrong, not just the list.
    T items;
    for (size_t i = 0; i < node.size(); ++i)
      items.push_back(convert<typename ListOf<T>::Element>(key + "." + std::to_string(i), node[i]));
    return items;
  }
  T value{};
  try {
    value = node.as<T>();
  } catch (const YAML::Exception&) {
    fail(key, std::string("expected ") + type_name<T>() + ", got " + show(node));
  }
  // Every number of a config is a quantity: .nan and .inf would surface far from the key.
  if constexpr (std::is_same_v<T, double>)
    if (!std::isfinite(value)) fail(key, "expected a finite number, got " + show(node));
  if constexpr (std::is_same_v<T, std::string>)
    if (!is_utf8(value))
      fail(key, "is not UTF-8 text ('" + escaped(value) +
                    "'); checkpoints record the config as JSON, which must be UTF-8");
  return value;
}

namespace {

// How a value appears in the resolved config: doubles in their shortest form that reads back
// exactly (0.9, not yaml-cpp's 0.90000000000000002).
template <class T>
YAML::Node resolved_value(const T& value) {
  if constexpr (std::is_same_v<T, double>) {
    char text[32];
    const auto end = std::to_chars(text, text + sizeof text, value).ptr;
    return YAML::Node(std::string(text, end));
  } else {
    return YAML::Node(value);
  }
}

}  // namespace

template <class T>
T ConfigNode::get(const std::string& key, const T& fallback) {
  used_.push_back(key);
  const T value = has(key) ? convert<T>(key, at(key)) : fallback;
  resolved_[key] = resolved_value(value);
  return value;
}

std::string ConfigNode::missing(const std::string& what, const std::string& key) const {
  std::vector<std::string> present;
  if (in_.IsMap())
    for (const auto& entry : in_)
      if (!entry.second.IsNull()) present.push_back(entry.first.Scalar());
  std::string message = "required " + what + " is missing";
  if (const std::optional<std::string> typo = closest_match(key, present))
    message += "; the config has '" + *typo + "': a typo?";
  return message;
}

template <class T>
T ConfigNode::require(const std::string& key) {
  if (!has(key)) fail(key, missing("key", key));
  return get<T>(key, T{});
}

template bool ConfigNode::get<bool>(const std::string&, const bool&);
template int64_t ConfigNode::get<int64_t>(const std::string&, const int64_t&);
template double ConfigNode::get<double>(const std::string&, const double&);
template std::string ConfigNode::get<std::string>(const std::string&, const std::string&);
template std::vector<int64_t> ConfigNode::get<std::vector<int64_t>>(const std::string&,
                                                                    const std::vector<int64_t>&);
template int64_t ConfigNode::require<int64_t>(const std::string&);
template double ConfigNode::require<double>(const std::string&);
template std::string ConfigNode::require<std::string>(const std::string&);
template std::vector<int64_t> ConfigNode::require<std::vector<int64_t>>(const std::string&);
template std::vector<std::vector<int64_t>> ConfigNode::require<std::vector<std::vector<int64_t>>>(
    const std::string&);
template std::vector<double> ConfigNode::require<std::vector<double>>(const std::string&);
template std::vector<std::string> ConfigNode::get<std::vector<std::string>>(
    const std::string&, const std::vector<std::string>&);

std::string ConfigNode::choice(const std::string& key, const std::vector<std::string>& allowed,
                               const std::string& fallback) {
  const std::string value = fallback.empty() ? require<std::string>(key) : get(key, fallback);
  if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
    std::string options;
    for (const std::string& a : allowed) options += (options.empty() ? "" : ", ") + a;
    const std::optional<std::string> meant = closest_match(value, allowed);
    fail(key, "unknown value '" + value + "'" + (meant ? ", did you mean '" + *meant + "'?" : "") +
                  " (expected one of: " + options + ")");
  }
  return value;
}

std::vector<std::string> ConfigNode::keys() const {
  std::vector<std::string> out;
  for (const auto& entry : in_) out.push_back(entry.first.as<std::string>());
  return out;
}

ConfigNode ConfigNode::child(const std::string& key) {
  if (!has(key)) fail(key, missing("section", key));
  const YAML::Node node = at(key);
  if (!node.IsMap()) fail(key, "expected a mapping, got " + show(node));
  used_.push_back(key);
  resolved_[key] = YAML::Node(YAML::NodeType::Map);
  return ConfigNode(node, resolved_[key], key_path(key), file_);
}

ConfigNode ConfigNode::optional_child(const std::string& key) {
  if (has(key)) return child(key);
  resolved_[key] = YAML::Node(YAML::NodeType::Map);
  return ConfigNode(YAML::Node(YAML::NodeType::Map), resolved_[key], key_path(key), file_);
}

std::vector<ConfigNode> ConfigNode::list(const std::string& key) {
  if (!has(key)) fail(key, missing("list", key));
  const YAML::Node node = at(key);
  if (!node.IsSequence() || node.size() == 0)
    fail(key, "expected a non-empty list, got " + show(node));
  used_.push_back(key);
  resolved_[key] = YAML::Node(YAML::NodeType::Sequence);
  std::vector<ConfigNode> items;
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item_path = key_path(key) + "." + std::to_string(i);
    if (!node[i].IsMap())
      throw ConfigError(file_ + ": " + item_path + ": expected a mapping, got " + show(node[i]));
    resolved_[key].push_back(YAML::Node(YAML::NodeType::Map));
    items.emplace_back(node[i], resolved_[key][i], item_path, file_);
  }
  return items;
}

void ConfigNode::finish() const {
  for (const auto& entry : in_) {
    const std::string key = entry.first.Scalar();
    if (entry.second.IsNull()) continue;  // "key: ~" means the same as leaving the key out
    if (std::find(used_.begin(), used_.end(), key) != used_.end()) continue;
    const std::optional<std::string> meant = closest_match(key, used_);
    fail(key, "unknown key" + (meant ? " (did you mean '" + *meant + "'?)" : std::string()));
  }
}

void apply_override(YAML::Node& root, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError("--set '" + assignment + "': expected section.key=value");
  const std::string path = assignment.substr(0, eq);
  YAML::Node value;
  try {
    value = YAML::Load(assignment.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw ConfigError("--set " + path + ": value is not valid YAML: " + e.msg);
  }
  std::vector<std::string> keys;
  std::stringstream stream(path);
  for (std::string key; std::getline(stream, key, '.');) {
    if (key.empty()) throw ConfigError("--set '" + assignment + "': empty key in path");
    keys.push_back(key);
  }
  // yaml-cpp's operator[] returns handles; descend by rebinding through reset(). Its operator[] on
  // a value throws an exception naming neither the override nor the key.
  YAML::Node node;
  node.reset(root);
  const auto not_a_value = [&](size_t depth) {
    if (!node.IsScalar()) return;
    std::string prefix = keys[0];
    for (size_t i = 1; i < depth; ++i) prefix += "." + keys[i];
    throw ConfigError("--set " + path + ": " + prefix + " is the value '" + node.Scalar() +
                      "', not a section with keys");
  };
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    not_a_value(i);
    YAML::Node next;
    if (node.IsSequence()) {
      next.reset(node[list_index(node, keys[i], path)]);
    } else {
      if (!node[keys[i]].IsDefined()) node[keys[i]] = YAML::Node(YAML::NodeType::Map);
      next.reset(node[keys[i]]);
    }
    node.reset(next);
  }
  not_a_value(keys.size() - 1);
  if (node.IsSequence()) {
    node[list_index(node, keys.back(), path)] = value;
  } else {
    node[keys.back()] = value;
  }
}

int64_t positive(ConfigNode& node, const std::string& key, int64_t value) {
  if (value <= 0) node.fail(key, "must be > 0, got " + std::to_string(value));
  return value;
}

std::string show_number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

std::array<int64_t, 2> height_width(ConfigNode& node, const std::string& key,
                                    const std::optional<std::array<int64_t, 2>>& fallback,
                                    bool zero_allowed) {
  std::array<int64_t, 2> value{};
  if (!node.has(key) && fallback) {
    const auto list = node.get<std::vector<int64_t>>(key, {(*fallback)[0], (*fallback)[1]});
    value = {list[0], list[1]};
  } else if (node.is_list(key)) {
    const auto list = node.require<std::vector<int64_t>>(key);
    if (list.size() != 2)
      node.fail(key, "expected one integer or a list of two (height, width), got " +
                         std::to_string(list.size()) + " items");
    value = {list[0], list[1]};
  } else {
    value[0] = value[1] = node.require<int64_t>(key);
  }
  for (int64_t v : value)
    if (v < (zero_allowed ? 0 : 1))
      node.fail(key,
                (zero_allowed ? "must be >= 0, got " : "must be > 0, got ") + std::to_string(v));
  return value;
}

double positive_number(ConfigNode& node, const std::string& key, double value) {
  if (!(value > 0)) node.fail(key, "must be > 0, got " + show_number(value));
  return value;
}

double in_unit_interval(ConfigNode& node, const std::string& key, double value) {
  if (!(value >= 0 && value < 1)) node.fail(key, "must be in [0, 1), got " + show_number(value));
  return value;
}

}  // namespace ddp
