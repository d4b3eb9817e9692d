#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/input_file.h"
#include "data/dataset.h"

namespace ddp {
namespace {

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    fields.push_back(line.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return fields;
}

std::string trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r") - begin + 1);
}

}  // namespace

Dataset read_csv(const std::string& path, const CsvOptions& options) {
  expect_regular_file<DataError>(path);
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open: " + std::strerror(errno));
  Dataset data;
  data.origin = path;
  std::string line;
  int64_t line_number = 0;
  size_t columns = 0;
  std::vector<size_t> label_at;  // per column: its place among the labels, or kFeature
  constexpr size_t kFeature = static_cast<size_t>(-1);
  const std::vector<int64_t> label_columns = options.label_columns.empty()
                                                 ? std::vector<int64_t>{options.label_column}
                                                 : options.label_columns;
  while (std::getline(in, line)) {
    ++line_number;
    if (trim(line).empty()) continue;
    if (options.header && line_number == 1) continue;
    const std::vector<std::string> fields = split_fields(line);
    const std::string where = path + ":" + std::to_string(line_number);
    if (columns == 0) {
      columns = fields.size();
      if (columns < label_columns.size() + 1)
        throw DataError(where + ": need at least one feature column and " +
                        std::to_string(label_columns.size()) + " label column(s)");
      label_at.assign(columns, kFeature);
      for (size_t j = 0; j < label_columns.size(); ++j) {
        const int64_t index = label_columns[j] < 0
                                  ? static_cast<int64_t>(columns) + label_columns[j]
                                  : label_columns[j];
        if (index < 0 || index >= static_cast<int64_t>(columns))
          throw DataError(where + ": label column " + std::to_string(label_columns[j]) +
                          " does not exist in a row of " + std::to_string(columns) + " columns");
        if (label_at[static_cast<size_t>(index)] != kFeature)
          throw DataError(where + ": label column " + std::to_string(label_columns[j]) +
                          " is listed twice");
        label_at[static_cast<size_t>(index)] = j;
      }
      data.label_width = static_cast<int64_t>(label_columns.size());
    } else if (fields.size() != columns) {
      throw DataError(where + ": expected " + std::to_string(columns) + " columns, found " +
                      std::to_string(fields.size()));
    }
    const size_t first_label = options.float_labels ? data.values.size() : data.labels.size();
    if (options.float_labels)
      data.values.resize(first_label + label_columns.size());
    else
      data.labels.resize(first_label + label_columns.size());
    for (size_t c = 0; c < fields.size(); ++c) {
      const std::string field = trim(fields[c]);
      const std::string cell = where + ": column " + std::to_string(c + 1);
      char* end = nullptr;
      errno = 0;
      if (label_at[c] != kFeature && options.float_labels) {
        const float value = std::strtof(field.c_str(), &end);
        if (field.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(value))
          throw DataError(cell + ": target '" + field + "' is not a finite number");
        data.values[first_label + label_at[c]] = value;
      } else if (label_at[c] != kFeature) {
        const long label = std::strtol(field.c_str(), &end, 10);
        // Exact as floats; a negative one is for loss.ignore_class (Dataset::check_labels).
        if (field.empty() || *end != '\0' || errno || label < -(1 << 24) || label > (1 << 24))
          throw DataError(cell + ": label '" + field + "' is not an integer");
        data.labels[first_label + label_at[c]] = static_cast<int32_t>(label);
      } else {
        const float value = std::strtof(field.c_str(), &end);
        if (field.empty() || *end != '\0' || errno == ERANGE)
          throw DataError(cell + ": '" + field + "' is not a number");
        if (!std::isfinite(value * options.scale))
          throw DataError(cell + ": '" + field + "' is not finite" +
                          (std::isfinite(value) ? " once scaled" : ""));
        data.features.push_back(value * options.scale);
      }
    }
  }
  if (in.bad()) throw DataError(path + ": read error: " + std::strerror(errno));
  if (data.size() == 0) throw DataError(path + ": no data rows");
  data.sample_shape = Shape{static_cast<int64_t>(columns - label_columns.size())};
  return data;
}

}  // namespace ddp
