#include "data/data_source.h"

#include <algorithm>
#include <climits>

#include "core/machine.h"
#include "data/npy_reader.h"
#include "train/config_reader.h"

namespace ddp {

std::string expand_rank(const std::string& path, int rank) {
  std::string out = path;
  const std::string token = "{rank}";
  for (size_t at = out.find(token); at != std::string::npos; at = out.find(token, at))
    out.replace(at, token.size(), std::to_string(rank));
  return out;
}

namespace {

// Note [features as targets]: an autoencoder's data (Keras' model.fit(x, x)): each sample's
// features, as the batches hold them (bytes times their scale), become its real-valued targets,
// and the labels the source read are dropped. The targets are a float copy of the features (188
// MB for Fashion-MNIST's training images): batches gather targets by sample as they gather
// labels, from their own array.
void use_features_as_targets(Dataset& data) {
  const int64_t samples = data.size(), width = data.sample_shape.numel();
  data.values.resize(static_cast<size_t>(samples * width));
  for (size_t i = 0; i < data.values.size(); ++i) data.values[i] = data.feature(i);
  data.labels.clear();
  data.label_width = width;
}

}  // namespace

DataSourceConfig parse_data_source(ConfigNode node, uint64_t seed) {
  DataSourceConfig source;
  source.path = node.path();
  source.type = node.choice("type", {"synthetic", "idx", "csv", "npy", "npz"});
  if (source.type == "synthetic") {
    source.samples = positive(node, "samples", node.require<int64_t>("samples"));
    source.features = positive(node, "features", node.require<int64_t>("features"));
    // `labels: L`: L independent 0/1 labels per sample (multi-label) instead of one of `classes`;
    // `targets: T`: T real values per sample (regression).
    const int given = static_cast<int>(node.has("classes")) + static_cast<int>(node.has("labels")) +
                      static_cast<int>(node.has("targets"));
    if (given > 1)
      node.fail(node.has("targets") ? "targets" : "labels",
                "give one of classes (one class per sample), labels (several 0/1 labels per "
                "sample) or targets (real values per sample)");
    if (node.has("labels")) {
      source.labels_per_sample = positive(node, "labels", node.require<int64_t>("labels"));
    } else if (node.has("targets")) {
      source.targets_per_sample = positive(node, "targets", node.require<int64_t>("targets"));
    } else {
      source.classes = positive(node, "classes", node.require<int64_t>("classes"));
      // `vocabulary: V`: token ids for an embedding (make_synthetic_tokens).
      if (node.has("vocabulary")) {
        source.vocabulary = positive(node, "vocabulary", node.require<int64_t>("vocabulary"));
        if (source.vocabulary < source.classes)
          node.fail("vocabulary", "must be at least classes (" + std::to_string(source.classes) +
                                      "), got " + std::to_string(source.vocabulary));
        // `min_length: L`: texts of L to `features` ids, padded with id 0 (Note [padding masks]).
        if (node.has("min_length")) {
          source.min_length = positive(node, "min_length", node.require<int64_t>("min_length"));
          if (source.min_length > source.features)
            node.fail("min_length", "must be at most features (" + std::to_string(source.features) +
                                        "), got " + std::to_string(source.min_length));
          if (source.vocabulary < 2)
            node.fail("vocabulary", "must be at least 2 with min_length (id 0 is the padding)");
        }
        // `per_step: true`: a class per token (make_synthetic_tags), `features` labels a sample.
        source.per_step = node.get("per_step", false);
      }
    }
    // Labels are 32-bit; the features are generated in memory, so they must fit there.
    if (source.classes > INT32_MAX)
      node.fail("classes", "must be at most " + std::to_string(INT32_MAX) + ", got " +
                               std::to_string(source.classes));
    const uint64_t memory = memory_limit_bytes();
    // Each sample: its features and its 32-bit labels.
    const auto labels = static_cast<uint64_t>(
        std::max<int64_t>({source.labels_per_sample, source.targets_per_sample,
                           source.per_step ? source.features : 1}));
    if (static_cast<uint64_t>(source.samples) >
        memory / sizeof(float) / (static_cast<uint64_t>(source.features) + labels))
      node.fail(source.samples >= source.features ? "samples" : "features",
                std::to_string(source.samples) + " samples x " + std::to_string(source.features) +
                    " features do not fit in this process's "
                    "memory (" +
                    std::to_string(memory >> 20) + " MiB)");
    source.seed = static_cast<uint64_t>(node.get<int64_t>("seed", static_cast<int64_t>(seed)));
  } else if (source.type == "idx") {
    source.images = node.require<std::string>("images");
    source.labels = node.require<std::string>("labels");
    source.normalize = node.get("normalize", true);
  } else if (source.type == "npy" || source.type == "npz") {
    // npy: two files; npz: one archive and the names of its two arrays (np.savez(x=..., y=...)).
    if (source.type == "npz") source.file = node.require<std::string>("path");
    source.features_array = node.require<std::string>("features");
    source.labels_array = node.require<std::string>("labels");
    source.scale = node.get("scale", 1.0);
  } else {
    source.file = node.require<std::string>("path");
    source.header = node.get("header", true);
    if (node.has("label_columns")) {
      if (node.has("label_column"))
        node.fail("label_columns", "give either label_column or label_columns, not both");
      source.label_columns = node.require<std::vector<int64_t>>("label_columns");
      if (source.label_columns.empty()) node.fail("label_columns", "must list at least one column");
    } else {
      source.label_column = node.get<int64_t>("label_column", -1);
    }
    // float: the label columns are real-valued targets (regression), not class indices.
    source.float_labels = node.choice("label_type", {"int", "float"}, "int") == "float";
    source.scale = node.get("scale", 1.0);
  }
  if (node.has("sample_weights"))
    source.sample_weights = node.require<std::string>("sample_weights");
  if (node.has("augment")) {
    if (source.path != "data.train")
      node.fail("augment",
                "only the training data are augmented; evaluation sees them as they are");
    source.augment = parse_augment(node.child("augment"));
  }
  source.features_as_targets =
      node.choice("targets_from", {"labels", "features"}, "labels") == "features";
  if (source.features_as_targets && node.has("augment"))
    node.fail("targets_from",
              "features as targets are the stored features, and augment would "
              "change the inputs alone; drop one of them");
  node.finish();
  return source;
}

Dataset load_dataset(const DataSourceConfig& source, int rank) {
  Dataset data;
  if (source.type == "synthetic") {
    data = source.labels_per_sample > 0
               ? make_synthetic_multilabel(source.samples, source.features,
                                           source.labels_per_sample, source.seed)
           : source.targets_per_sample > 0
               ? make_synthetic_regression(source.samples, source.features,
                                           source.targets_per_sample, source.seed)
           : source.per_step
               ? make_synthetic_tags(source.samples, source.features, source.vocabulary,
                                     source.classes, source.seed, source.min_length)
           : source.vocabulary > 0
               ? make_synthetic_tokens(source.samples, source.features, source.vocabulary,
                                       source.classes, source.seed, source.min_length)
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
                     static_cast<float>(source.scale), source.float_labels});
  }
  data.origin = source.path + " (" + data.origin + ")";
  if (source.features_as_targets) use_features_as_targets(data);
  if (!source.sample_weights.empty())
    data.sample_weights =
        read_npy_sample_weights(expand_rank(source.sample_weights, rank), data.size());
  return data;
}

}  // namespace ddp
