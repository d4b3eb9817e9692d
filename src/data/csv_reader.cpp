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
  size_t label_index = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (trim(line).empty()) continue;
    if (options.header && line_number == 1) continue;
    const std::vector<std::string> fields = split_fields(line);
    const std::string where = path + ":" + std::to_string(line_number);
    if (columns == 0) {
      columns = fields.size();
      if (columns < 2) throw DataError(where + ": need at least one feature and one label column");
      const int64_t index = options.label_column < 0
                                ? static_cast<int64_t>(columns) + options.label_column
                                : options.label_column;
      if (index < 0 || index >= static_cast<int64_t>(columns))
        throw DataError(where + ": label column " + std::to_string(options.label_column) +
                        " does not exist in a row of " + std::to_string(columns) + " columns");
      label_index = static_cast<size_t>(index);
    } else if (fields.size() != columns) {
      throw DataError(where + ": expected " + std::to_string(columns) + " columns, found " +
                      std::to_string(fields.size()));
    }
    for (size_t c = 0; c < fields.size(); ++c) {
      const std::string field = trim(fields[c]);
      const std::string cell = where + ": column " + std::to_string(c + 1);
      char* end = nullptr;
      errno = 0;
      if (c == label_index) {
        const long label = std::strtol(field.c_str(), &end, 10);
        if (field.empty() || *end != '\0' || errno || label < 0 || label > (1 << 24))
          throw DataError(cell + ": label '" + field + "' is not a non-negative integer");
        data.labels.push_back(static_cast<int32_t>(label));
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
  if (data.labels.empty()) throw DataError(path + ": no data rows");
  data.sample_shape = Shape{static_cast<int64_t>(columns - 1)};
  return data;
}

}  // namespace ddp
