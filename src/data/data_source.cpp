#include "data/data_source.h"

#include "data/npy_reader.h"

namespace ddp {

std::string expand_rank(const std::string& path, int rank) {
  std::string out = path;
  const std::string token = "{rank}";
  for (size_t at = out.find(token); at != std::string::npos; at = out.find(token, at))
    out.replace(at, token.size(), std::to_string(rank));
  return out;
}

Dataset load_dataset(const DataSourceConfig& source, int rank) {
  Dataset data;
  if (source.type == "synthetic") {
    data = source.labels_per_sample > 0
               ? make_synthetic_multilabel(source.samples, source.features,
                                           source.labels_per_sample, source.seed)
               : make_synthetic(source.samples, source.features, source.classes, source.seed);
  } else if (source.type == "idx") {
    data = read_idx(expand_rank(source.images, rank), expand_rank(source.labels, rank),
                    source.normalize ? 1.0f / 255.0f : 1.0f);
  } else if (source.type == "npy") {
    data = read_npy(expand_rank(source.features_array, rank),
                    expand_rank(source.labels_array, rank), static_cast<float>(source.scale));
  } else if (source.type == "npz") {
    data = read_npz(expand_rank(source.file, rank), source.features_array, source.labels_array,
                    static_cast<float>(source.scale));
  } else {
    data = read_csv(expand_rank(source.file, rank),
                    {source.header, source.label_column, source.label_columns,
                     static_cast<float>(source.scale)});
  }
  data.origin = source.path + " (" + data.origin + ")";
  return data;
}

}  // namespace ddp
