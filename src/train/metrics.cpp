#include "train/metrics.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace ddp {

namespace {

// " - name: 0.1234" per metric, names prefixed.
std::string metric_list(const std::vector<MetricValue>& metrics, const char* prefix) {
  std::string out;
  char item[96];
  for (const MetricValue& m : metrics) {
    std::snprintf(item, sizeof item, " - %s%s: %.4f", prefix, m.name.c_str(), m.value);
    out += item;
  }
  return out;
}

}  // namespace

std::string format_epoch_line(const EpochRecord& r) {
  char buffer[160];
  std::snprintf(buffer, sizeof buffer, "Epoch %lld/%lld - %lld/%lld steps - loss: %.4f",
                static_cast<long long>(r.epoch), static_cast<long long>(r.epochs),
                static_cast<long long>(r.steps_completed), static_cast<long long>(r.steps), r.loss);
  std::string line = buffer + metric_list(r.metrics, "");
  if (r.val_loss) {
    std::snprintf(buffer, sizeof buffer, " - val_loss: %.4f", *r.val_loss);
    line += buffer + metric_list(r.val_metrics, "val_");
  }
  std::snprintf(buffer, sizeof buffer, " - %.0f samples/s - %.2fs", r.samples_per_sec, r.seconds);
  line += buffer;
  if (r.skipped_steps > 0) {
    std::snprintf(buffer, sizeof buffer, " - skipped %lld non-finite step(s)",
                  static_cast<long long>(r.skipped_steps));
    line += buffer;
  }
  if (r.clipped_steps) {
    std::snprintf(buffer, sizeof buffer, " - clipped %lld/%lld",
                  static_cast<long long>(*r.clipped_steps),
                  static_cast<long long>(r.steps_completed));
    line += buffer;
  }
  return line;
}

MetricsLog::MetricsLog(const std::string& path, int64_t keep_epochs) : path_(path) {
  std::vector<std::string> kept;
  if (keep_epochs > 0) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (record.is_object() && record.value("epoch", int64_t{0}) <= keep_epochs)
        kept.push_back(line);
    }
  }
  out_.open(path, std::ios::trunc);
  for (const std::string& line : kept) out_ << line << '\n';
  out_ << std::flush;
  if (!out_) throw RuntimeError(path + ": cannot write metrics: " + std::strerror(errno));
}

void MetricsLog::append(const EpochRecord& r) {
  nlohmann::json j = {{"epoch", r.epoch},
                      {"loss", r.loss},
                      {"samples_per_sec", r.samples_per_sec},
                      {"seconds", r.seconds},
                      {"steps", r.steps},
                      {"unix_time", r.unix_time},
                      {"learning_rate", r.learning_rate}};
  for (const MetricValue& m : r.metrics) j[m.name] = m.value;
  if (r.steps_completed != r.steps) j["steps_completed"] = r.steps_completed;
  if (r.skipped_steps > 0) j["skipped_steps"] = r.skipped_steps;
  if (r.clipped_steps) j["clipped_steps"] = *r.clipped_steps;
  if (r.val_loss) {
    j["val_loss"] = *r.val_loss;
    for (const MetricValue& m : r.val_metrics) j["val_" + m.name] = m.value;
  }
  out_ << j.dump() << '\n' << std::flush;
  if (!out_) throw RuntimeError(path_ + ": cannot write metrics: " + std::strerror(errno));
}

void ProgressBar::start(int64_t epoch, int64_t epochs, int64_t steps) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = steps;
  started_ = std::chrono::steady_clock::now();
  last_draw_ = mode_ == ProgressMode::kLines ? started_ : std::chrono::steady_clock::time_point{};
}

void ProgressBar::update(int64_t done_steps, double running_loss) {
  if (mode_ == ProgressMode::kOff) return;
  const auto now = std::chrono::steady_clock::now();
  if (mode_ == ProgressMode::kLines) {
    // The epoch's own line follows its last step.
    if (done_steps >= steps_ || now - last_draw_ < line_interval_) return;
    last_draw_ = now;
    char line[200];
    std::snprintf(line, sizeof line,
                  "Epoch %lld/%lld - %lld/%lld steps - loss: %.4f (rank 0) - %.0fs",
                  static_cast<long long>(epoch_), static_cast<long long>(epochs_),
                  static_cast<long long>(done_steps), static_cast<long long>(steps_), running_loss,
                  std::chrono::duration<double>(now - started_).count());
    out_ << line << '\n' << std::flush;
    return;
  }
  if (done_steps < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done_steps / std::max<int64_t>(steps_, 1));
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), '.');
  char line[200];
  std::snprintf(line, sizeof line, "\rEpoch %lld/%lld %lld/%lld [%s] - loss: %.4f (rank 0)",
                static_cast<long long>(epoch_), static_cast<long long>(epochs_),
                static_cast<long long>(done_steps), static_cast<long long>(steps_), bar.c_str(),
                running_loss);
  out_ << line << std::flush;
}

void ProgressBar::clear() {
  if (mode_ == ProgressMode::kBar) out_ << "\r\033[K" << std::flush;
}

std::string format_summary(const std::vector<EpochRecord>& records, double wall_seconds) {
  if (records.empty()) return "done: nothing left to train\n";
  const EpochRecord& last = records.back();
  // The last epoch evaluated on the test split (training.validation_freq may skip some).
  const auto evaluated = std::find_if(records.rbegin(), records.rend(),
                                      [](const EpochRecord& r) { return r.val_loss.has_value(); });
  const bool validated = evaluated != records.rend();
  // The best epoch by the first metric, on the test split when there is one (among the epochs
  // evaluated); by the loss when no metric is configured.
  const std::vector<MetricValue>& judged = validated ? evaluated->val_metrics : last.metrics;
  const std::string name = judged.empty() ? "loss" : judged.front().name;
  const bool lower = judged.empty() || MetricSet::lower_is_better(name);
  auto score = [&](const EpochRecord& r) {
    const std::vector<MetricValue>& m = validated ? r.val_metrics : r.metrics;
    if (!m.empty()) return m.front().value;
    return validated ? r.val_loss.value_or(0) : r.loss;
  };
  const EpochRecord* best = validated ? &*evaluated : &last;
  double samples_per_sec = 0;
  for (const EpochRecord& r : records) {
    const bool judge = !validated || r.val_loss.has_value();
    if (judge && (lower ? score(r) < score(*best) : score(r) > score(*best))) best = &r;
    samples_per_sec += r.samples_per_sec / static_cast<double>(records.size());
  }
  char buffer[512];
  std::snprintf(buffer, sizeof buffer,
                "done: epochs %lld-%lld of %lld in %.2f s (%.0f samples/s); final loss %.4f",
                static_cast<long long>(records.front().epoch), static_cast<long long>(last.epoch),
                static_cast<long long>(last.epochs), wall_seconds, samples_per_sec, last.loss);
  std::string out = buffer;
  // ", accuracy 0.9012, val_loss 0.3000, val_accuracy 0.8765"
  for (const MetricValue& m : last.metrics) {
    std::snprintf(buffer, sizeof buffer, ", %s %.4f", m.name.c_str(), m.value);
    out += buffer;
  }
  if (validated) {
    std::snprintf(buffer, sizeof buffer, ", val_loss %.4f", *evaluated->val_loss);
    out += buffer;
    for (const MetricValue& m : evaluated->val_metrics) {
      std::snprintf(buffer, sizeof buffer, ", val_%s %.4f", m.name.c_str(), m.value);
      out += buffer;
    }
    if (evaluated->epoch != last.epoch) {
      std::snprintf(buffer, sizeof buffer, " (epoch %lld)",
                    static_cast<long long>(evaluated->epoch));
      out += buffer;
    }
  }
  std::snprintf(buffer, sizeof buffer, "; best %s%s %.4f at epoch %lld\n", validated ? "val_" : "",
                name.c_str(), score(*best), static_cast<long long>(best->epoch));
  return out + buffer;
}

}  // namespace ddp
