#include "train/monitor.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "train/metric_set.h"

namespace ddp {
namespace {

bool is_validation(const std::string& name) { return name.rfind("val_", 0) == 0; }

}  // namespace

Monitor::Monitor(std::string name, const std::string& mode, double min_delta)
    : name_(std::move(name)), min_delta_(min_delta) {
  const std::string quantity = is_validation(name_) ? name_.substr(4) : name_;
  higher_is_better_ =
      mode == "auto" ? quantity != "loss" && !MetricSet::lower_is_better(quantity) : mode == "max";
}

bool Monitor::improves(double value, std::optional<double> best) const {
  if (!best) return true;
  return higher_is_better_ ? value - min_delta_ > *best : value + min_delta_ < *best;
}

double Monitor::value_in(const EpochRecord& record) const {
  const bool validation = is_validation(name_);
  const std::string quantity = validation ? name_.substr(4) : name_;
  if (quantity == "loss") return validation ? record.val_loss.value_or(NAN) : record.loss;
  for (const MetricValue& m : validation ? record.val_metrics : record.metrics)
    if (m.name == quantity) return m.value;
  return NAN;
}

std::string Monitor::unreported(const std::vector<std::string>& metrics, bool validation) const {
  const std::string quantity = is_validation(name_) ? name_.substr(4) : name_;
  if (quantity != "loss" && std::find(metrics.begin(), metrics.end(), quantity) == metrics.end()) {
    std::string reported = "loss";
    for (const std::string& metric : metrics) reported += ", " + metric;
    return "'" + name_ + "' is not reported; each epoch reports " + reported +
           (validation ? " and their val_ versions" : "");
  }
  if (is_validation(name_) && !validation)
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
