#include "train/monitor.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "train/metric_set.h"

namespace ddp {
Monitor::Monitor(std::string name, const std::string& mode, double min_delta)
    : name_(std::move(name)),
      validation_(name_.rfind("val_", 0) == 0),
      quantity_(validation_ ? name_.substr(4) : name_),
      higher_is_better_(mode == "auto"
                            ? quantity_ != "loss" && !MetricSet::lower_is_better(quantity_)
                            : mode == "max"),
      min_delta_(min_delta) {}

bool Monitor::improves(double value, std::optional<double> best) const {
  if (!best) return true;
  return higher_is_better_ ? value - min_delta_ > *best : value + min_delta_ < *best;
}

double Monitor::value_in(const EpochRecord& record) const {
  if (quantity_ == "loss") return validation_ ? record.val_loss.value_or(NAN) : record.loss;
  for (const MetricValue& m : validation_ ? record.val_metrics : record.metrics)
    if (m.name == quantity_) return m.value;
  return NAN;
}

std::string Monitor::unreported(const std::vector<std::string>& metrics, bool validation) const {
  if (quantity_ != "loss" &&
      std::find(metrics.begin(), metrics.end(), quantity_) == metrics.end()) {
    std::string reported = "loss";
    for (const std::string& metric : metrics) reported += ", " + metric;
    return "'" + name_ + "' is not reported; each epoch reports " + reported +
           (validation ? " and their val_ versions" : "");
  }
  if (validation_ && !validation)
    return "'" + name_ + "' needs validation data (data.test), and this run has none";
  return "";
}

nlohmann::json value_to_json(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return value;
}

double value_from_json(const nlohmann::json& json) {
  if (json.is_number()) return json.get<double>();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  if (json == "nan") return std::numeric_limits<double>::quiet_NaN();
  if (json == "inf") return kInf;
  if (json == "-inf") return -kInf;
  throw std::runtime_error("a monitored value is " + json.dump() + ", not a number");
}

std::string Monitor::describe() const {
  return name_ + (higher_is_better_ ? " (higher is better)" : " (lower is better)");
}

}  // namespace ddp
