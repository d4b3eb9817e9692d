#include "train/metrics.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace ddp {

std::string format_epoch_line(const EpochRecord& r) {
  char buffer[320];
  int n = std::snprintf(
      buffer, sizeof buffer, "Epoch %lld/%lld - %lld/%lld steps - loss: %.4f - accuracy: %.4f",
      static_cast<long long>(r.epoch), static_cast<long long>(r.epochs),
      static_cast<long long>(r.steps), static_cast<long long>(r.steps), r.loss, r.accuracy);
  if (r.val_loss)
    n += std::snprintf(buffer + n, sizeof buffer - n, " - val_loss: %.4f - val_accuracy: %.4f",
                       *r.val_loss, *r.val_accuracy);
  n += std::snprintf(buffer + n, sizeof buffer - n, " - %.0f samples/s - %.2fs", r.samples_per_sec,
                     r.seconds);
  if (r.skipped_steps > 0)
    std::snprintf(buffer + n, sizeof buffer - n, " - skipped %lld non-finite step(s)",
                  static_cast<long long>(r.skipped_steps));
  return buffer;
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
  nlohmann::json j = {{"epoch", r.epoch},        {"loss", r.loss},
                      {"accuracy", r.accuracy},  {"samples_per_sec", r.samples_per_sec},
                      {"seconds", r.seconds},    {"steps", r.steps},
                      {"unix_time", r.unix_time}};
  if (r.skipped_steps > 0) j["skipped_steps"] = r.skipped_steps;
  if (r.val_loss) {
    j["val_loss"] = *r.val_loss;
    j["val_accuracy"] = *r.val_accuracy;
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
  const bool validated = last.val_accuracy.has_value();
  auto accuracy_of = [validated](const EpochRecord& r) {
    return validated ? r.val_accuracy.value_or(0) : r.accuracy;
  };
  const EpochRecord* best = &records.front();
  double samples_per_sec = 0;
  for (const EpochRecord& r : records) {
    if (accuracy_of(r) > accuracy_of(*best)) best = &r;
    samples_per_sec += r.samples_per_sec / static_cast<double>(records.size());
  }
  char buffer[512];
  int n = std::snprintf(buffer, sizeof buffer,
                        "done: epochs %lld-%lld of %lld in %.2f s (%.0f samples/s); final loss "
                        "%.4f, accuracy %.4f",
                        static_cast<long long>(records.front().epoch),
                        static_cast<long long>(last.epoch), static_cast<long long>(last.epochs),
                        wall_seconds, samples_per_sec, last.loss, last.accuracy);
  if (validated)
    n += std::snprintf(buffer + n, sizeof buffer - static_cast<size_t>(n),
                       ", val_loss %.4f, val_accuracy %.4f", *last.val_loss, *last.val_accuracy);
  std::snprintf(buffer + n, sizeof buffer - static_cast<size_t>(n),
                "; best %s %.4f at epoch %lld\n", validated ? "val_accuracy" : "accuracy",
                accuracy_of(*best), static_cast<long long>(best->epoch));
  return buffer;
}

}  // namespace ddp
