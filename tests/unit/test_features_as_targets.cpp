// Note [features as targets]: `targets_from: features` makes each sample's features (as batches
// hold them: IDX bytes times their scale) its real-valued targets, so that an autoencoder trains
// from the images alone; refused with augmentation and for unknown sources.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/data_source.h"
#include "train/config.h"

namespace ddp {
namespace {

// An uncompressed IDX file of unsigned bytes with the given dimensions.
std::string write_idx(const std::string& name, const std::vector<uint32_t>& dims,
                      const std::vector<unsigned char>& values) {
  const std::string path = (std::filesystem::temp_directory_path() / name).string();
  std::vector<unsigned char> bytes = {0, 0, 0x08, static_cast<unsigned char>(dims.size())};
  for (const uint32_t d : dims)
    for (const int shift : {24, 16, 8, 0}) bytes.push_back(static_cast<unsigned char>(d >> shift));
  bytes.insert(bytes.end(), values.begin(), values.end());
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  return path;
}

Config config_with(const std::string& train) {
  return parse_config(
      YAML::Load(
          "{data: {train: " + train +
          "}, model: {input: [2, 3], layers: [{type: flatten}, {type: "
          "dense, units: 6}]}, loss: mean_squared_error, optimizer: {type: sgd, learning_rate: "
          "0.1}, training: {epochs: 1, batch_size_per_rank: 2}}"),
      "c.yaml");
}

std::string error_of(const std::string& train) {
  try {
    config_with(train);
    return "";
  } catch (const ConfigError& e) {
    return e.what();
  }
}

TEST(FeaturesAsTargets, EachSampleTargetsItsOwnScaledPixels) {
  const std::vector<unsigned char> pixels = {0, 51, 102, 153, 204, 255, 10, 20, 30, 40, 50, 60};
  const std::string images = write_idx("fat_images.idx", {2, 2, 3}, pixels);
  const std::string labels = write_idx("fat_labels.idx", {2}, {1, 0});
  const std::string source = "{type: idx, images: " + images + ", labels: " + labels;
  const Config config = config_with(source + ", targets_from: features}");
  const Dataset data = load_dataset(config.train_data, 0);
  ASSERT_EQ(data.size(), 2);
  EXPECT_TRUE(data.real_valued());
  EXPECT_TRUE(data.labels.empty());
  EXPECT_EQ(data.label_width, 6);
  ASSERT_EQ(data.values.size(), pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i)
    EXPECT_FLOAT_EQ(data.values[i], static_cast<float>(pixels[i]) / 255.0f) << "target " << i;
  // Without it the labels stay the targets.
  const Dataset labelled = load_dataset(config_with(source + "}").train_data, 0);
  EXPECT_EQ(labelled.labels, (std::vector<int32_t>{1, 0}));
  EXPECT_FALSE(labelled.real_valued());

  EXPECT_NE(error_of(source + ", targets_from: images}").find("data.train.targets_from"),
            std::string::npos);
  EXPECT_EQ(error_of(source + ", targets_from: features, augment: {random_flip: horizontal}}"),
            "c.yaml: data.train.targets_from: features as targets are the stored features, and "
            "augment would change the inputs alone; drop one of them");
}

}  // namespace
}  // namespace ddp
