// IDX and CSV readers on small files written by the tests, including every bad-input case.

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/gzip_file.h"

namespace ddp {
namespace {

namespace fs = std::filesystem;

class DataFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ddp_data_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static std::vector<unsigned char> idx_bytes(unsigned char type, std::vector<uint32_t> dims,
                                              const std::vector<unsigned char>& data) {
    std::vector<unsigned char> bytes = {0, 0, type, static_cast<unsigned char>(dims.size())};
    for (uint32_t d : dims)
      for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back((d >> shift) & 0xff);
    bytes.insert(bytes.end(), data.begin(), data.end());
    return bytes;
  }

  std::string write(const std::string& name, const std::vector<unsigned char>& bytes,
                    bool gzip = false) {
    const std::string p = path(name);
    if (gzip) {
      gzFile f = gzopen(p.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(p, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
    }
    return p;
  }

  std::string write_text(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }

  // Two 2x3 images with pixel values 0..11 and labels {1, 0}.
  void write_images_and_labels(bool gzip) {
    std::vector<unsigned char> pixels(12);
    for (int i = 0; i < 12; ++i) pixels[i] = static_cast<unsigned char>(i * 20);
    images_ = write("images.idx", idx_bytes(0x08, {2, 2, 3}, pixels), gzip);
    labels_ = write("labels.idx", idx_bytes(0x08, {2}, {1, 0}), gzip);
  }

  template <class Fn>
  std::string error_of(Fn&& fn) {
    try {
      fn();
    } catch (const DataError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no DataError thrown";
    return "";
  }

  fs::path dir_;
  std::string images_, labels_;
};

TEST_F(DataFiles, ReadsPlainIdx) {
  write_images_and_labels(false);
  const Dataset data = read_idx(images_, labels_, 1);
  EXPECT_EQ(data.size(), 2);
  EXPECT_EQ(data.sample_shape, (Shape{2, 3}));
  EXPECT_FLOAT_EQ(data.feature(7), 140);
  EXPECT_EQ(data.labels, (std::vector<int32_t>{1, 0}));
  // Read in place (Note [mapped features]), as the gzip copy of the same file is read into memory.
  ASSERT_NE(data.mapping, nullptr);
  EXPECT_TRUE(data.byte_features.empty());
  std::vector<unsigned char> pixels(12);
  for (int i = 0; i < 12; ++i) pixels[i] = static_cast<unsigned char>(i * 20);
  const Dataset inflated =
      read_idx(write("images_gz.idx", idx_bytes(0x08, {2, 2, 3}, pixels), true), labels_, 1);
  EXPECT_EQ(inflated.mapping, nullptr);
  EXPECT_EQ(data.fingerprint(), inflated.fingerprint());
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(data.feature(i), inflated.feature(i)) << i;
}

// A (samples, labels) label file: several 0/1 labels per sample (multi-label).
TEST_F(DataFiles, ReadsMultiLabelIdx) {
  write_images_and_labels(false);
  const std::string multi = write("multi.idx", idx_bytes(0x08, {2, 3}, {1, 0, 1, 0, 1, 1}));
  const Dataset data = read_idx(images_, multi, 1);
  EXPECT_EQ(data.size(), 2);
  EXPECT_EQ(data.label_width, 3);
  EXPECT_NO_THROW(data.check_labels(3, TargetLayout::kLabels, true));
  const std::string empty = write("empty.idx", idx_bytes(0x08, {2, 0}, {}));
  EXPECT_NE(error_of([&] { read_idx(images_, empty, 1); }).find("empty.idx: 0 labels per sample"),
            std::string::npos);
}

TEST_F(DataFiles, ReadsGzipIdxAndScales) {
  write_images_and_labels(true);
  const Dataset data = read_idx(images_, labels_, 1.0f / 255);
  EXPECT_FLOAT_EQ(data.feature(11), 220.0f / 255);
  EXPECT_EQ(data.labels[0], 1);
}

TEST_F(DataFiles, MissingFile) {
  write_images_and_labels(false);
  EXPECT_NE(error_of([&] { read_idx(path("nope.idx"), labels_, 1); }).find("nope.idx: cannot open"),
            std::string::npos);
}

TEST_F(DataFiles, WrongMagic) {
  write_images_and_labels(false);
  const std::string bad = write("bad.idx", {0x1f, 0x00, 0x08, 0x01, 0, 0, 0, 1, 5});
  EXPECT_NE(error_of([&] { read_idx(bad, labels_, 1); }).find("bad.idx: not an IDX file"),
            std::string::npos);
}

TEST_F(DataFiles, UnsupportedElementType) {
  write_images_and_labels(false);
  const std::string bad = write("float.idx", idx_bytes(0x0D, {1, 1}, {0, 0, 0, 0}));
  EXPECT_NE(error_of([&] { read_idx(bad, labels_, 1); }).find("element type 0d"),
            std::string::npos);
}

TEST_F(DataFiles, TruncatedData) {
  write_images_and_labels(false);
  const std::string bad = write("short.idx", idx_bytes(0x08, {2, 2, 3}, {1, 2, 3}));
  const std::string message = error_of([&] { read_idx(bad, labels_, 1); });
  EXPECT_NE(message.find("short.idx: truncated in data (expected 12 bytes, got 3)"),
            std::string::npos)
      << message;
}

TEST_F(DataFiles, TruncatedGzip) {
  write_images_and_labels(true);
  std::ifstream in(images_, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = path("cut.idx.gz");
  std::ofstream(cut, std::ios::binary).write(bytes.data(), static_cast<long>(bytes.size() / 2));
  EXPECT_NE(error_of([&] { read_idx(cut, labels_, 1); }).find("cut.idx.gz"), std::string::npos);
}

// The bytes of a file, as written.
std::vector<unsigned char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Note [whole-file gzip]: one member is inflated whole; whatever else is left to zlib's stream,
// which reads what it can and names the file in its errors.
TEST_F(DataFiles, InflatesOneGzipMemberWholeAndLeavesTheRestToZlib) {
  std::vector<unsigned char> pixels(3000);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<unsigned char>(i * 7 % 251);
  const std::vector<unsigned char> plain = idx_bytes(0x08, {1000, 3}, pixels);
  const std::string one = write("one.idx.gz", plain, true);
  const std::optional<std::vector<unsigned char>> whole = inflate_gzip_file(one);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(*whole, plain);
  EXPECT_FALSE(inflate_gzip_file(write("plain.idx", plain)).has_value());

  // Two members (what `cat a.gz b.gz` makes) of equal sizes, so that the first fills the size the
  // last trailer gives: zlib reads on through the second.
  const auto half = static_cast<std::ptrdiff_t>(plain.size() / 2);
  const std::vector<unsigned char> head(plain.begin(), plain.begin() + half);
  const std::vector<unsigned char> tail(plain.begin() + half, plain.end());
  std::vector<unsigned char> joined = file_bytes(write("head.gz", head, true));
  const std::vector<unsigned char> second = file_bytes(write("tail.gz", tail, true));
  joined.insert(joined.end(), second.begin(), second.end());
  const std::string two = write("two.idx.gz", joined);
  EXPECT_FALSE(inflate_gzip_file(two).has_value());
  std::vector<unsigned char> labels(1000, 1);
  const std::string labels_path = write("labels.idx", idx_bytes(0x08, {1000}, labels), true);
  const Dataset data = read_idx(two, labels_path, 1);
  EXPECT_EQ(data.byte_features, pixels);

  // Inflating to over 64 times the file's size (all zeros): through zlib's stream, whose memory
  // grows with what it really inflates, not with what the trailer claims.
  const std::vector<unsigned char> zeros =
      idx_bytes(0x08, {1000, 100}, std::vector<unsigned char>(100000));
  const std::string sparse = write("zeros.idx.gz", zeros, true);
  EXPECT_FALSE(inflate_gzip_file(sparse).has_value());
  EXPECT_EQ(read_idx(sparse, labels_path, 1).byte_features.size(), 100000u);

  // A trailer whose size lies: zlib finds the mismatch.
  std::vector<unsigned char> lying = file_bytes(one);
  lying[lying.size() - 4] ^= 1;
  const std::string liar = write("liar.idx.gz", lying);
  EXPECT_FALSE(inflate_gzip_file(liar).has_value());
  const std::string message = error_of([&] { read_idx(liar, labels_path, 1); });
  EXPECT_NE(message.find("liar.idx.gz: corrupt gzip data"), std::string::npos) << message;
}

TEST_F(DataFiles, InflatedWholeTheDataMustBeWhatTheHeaderDeclares) {
  write_images_and_labels(true);
  const std::string shorter = write("short.idx.gz", idx_bytes(0x08, {2, 2, 3}, {1, 2, 3}), true);
  std::string message = error_of([&] { read_idx(shorter, labels_, 1); });
  EXPECT_NE(message.find("short.idx.gz: truncated in data (expected 12 bytes, got 3)"),
            std::string::npos)
      << message;
  const std::string longer = write("long.idx.gz", idx_bytes(0x08, {2}, {1, 0, 7}), true);
  message = error_of([&] { read_idx(images_, longer, 1); });
  EXPECT_NE(message.find("long.idx.gz: unexpected bytes after the 2 data bytes"), std::string::npos)
      << message;
}

TEST_F(DataFiles, TrailingBytes) {
  write_images_and_labels(false);
  const std::string bad = write("long.idx", idx_bytes(0x08, {2}, {1, 0, 7}));
  EXPECT_NE(error_of([&] { read_idx(images_, bad, 1); }).find("long.idx: unexpected bytes"),
            std::string::npos);
}

TEST_F(DataFiles, ImageLabelCountMismatch) {
  write_images_and_labels(false);
  const std::string three = write("three.idx", idx_bytes(0x08, {3}, {1, 0, 1}));
  const std::string message = error_of([&] { read_idx(images_, three, 1); });
  EXPECT_NE(message.find("has 2 images but"), std::string::npos) << message;
  EXPECT_NE(message.find("three.idx has 3 labels"), std::string::npos) << message;
}

TEST_F(DataFiles, LabelOutOfRange) {
  write_images_and_labels(false);
  Dataset data = read_idx(images_, labels_, 1);
  EXPECT_NO_THROW(data.check_labels(2, TargetLayout::kClassIndex, false));
  const std::string message =
      error_of([&] { data.check_labels(1, TargetLayout::kClassIndex, false); });
  EXPECT_NE(message.find("labels.idx: label 1 of sample 0 is outside [0, 1)"), std::string::npos)
      << message;
}

TEST_F(DataFiles, ReadsCsv) {
  const std::string csv = write_text("d.csv", "a,b,label\n0.5,1,2\n-1,3e2,0\n\n");
  const Dataset data = read_csv(csv, {});
  EXPECT_EQ(data.size(), 2);
  EXPECT_EQ(data.sample_shape, (Shape{2}));
  EXPECT_EQ(data.features, (std::vector<float>{0.5f, 1, -1, 300}));
  EXPECT_EQ(data.labels, (std::vector<int32_t>{2, 0}));
}

TEST_F(DataFiles, CsvLabelColumnFirstWithoutHeader) {
  const std::string csv = write_text("d.csv", "3,10,20\n1,30,40\n");
  const Dataset data =
      read_csv(csv, {.header = false, .label_column = 0, .label_columns = {}, .scale = 0.1f});
  EXPECT_EQ(data.labels, (std::vector<int32_t>{3, 1}));
  EXPECT_FLOAT_EQ(data.features[3], 4);
}

TEST_F(DataFiles, CsvFloatLabelsAreRegressionTargets) {
  const std::string csv = write_text("v.csv", "t0,x,t1\n0.5,1,-2e-3\n-1.25,3,7\n");
  const Dataset data = read_csv(csv, {.label_columns = {0, 2}, .float_labels = true});
  EXPECT_TRUE(data.real_valued());
  EXPECT_EQ(data.size(), 2);
  EXPECT_EQ(data.label_width, 2);
  EXPECT_EQ(data.features, (std::vector<float>{1, 3}));
  EXPECT_EQ(data.values, (std::vector<float>{0.5f, -2e-3f, -1.25f, 7}));
  const std::string bad = write_text("b.csv", "x,t\n1,0.5\n2,nan\n");
  EXPECT_NE(error_of([&] {
              read_csv(bad, {.float_labels = true});
            }).find("b.csv:3: column 2: target 'nan' is not a finite number"),
            std::string::npos);
  // Integer and real-valued targets do not mix between a training and a test set.
  const Dataset classes = read_csv(write_text("c.csv", "x,y\n1,0\n2,1\n"), {});
  EXPECT_NO_THROW(data.check_labels(2, TargetLayout::kValues, false));
  EXPECT_NE(error_of([&] {
              data.check_labels(1, TargetLayout::kValues, false);
            }).find("v.csv: 2 target value(s) per sample for a model with 1 outputs"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              classes.check_labels(1, TargetLayout::kValues, false);
            }).find("c.csv: integer labels, where the training set has real-valued targets"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              data.check_labels(2, TargetLayout::kLabels, false);
            }).find("v.csv: real-valued targets, where the training set has integer labels"),
            std::string::npos);
}

TEST_F(DataFiles, CsvBadCells) {
  const std::string bad_number = write_text("n.csv", "x,y\n1,0\nabc,1\n");
  EXPECT_NE(
      error_of([&] { read_csv(bad_number, {}); }).find("n.csv:3: column 1: 'abc' is not a number"),
      std::string::npos);
  const std::string bad_label = write_text("l.csv", "x,y\n1,0\n2,1.5\n");
  EXPECT_NE(error_of([&] {
              read_csv(bad_label, {});
            }).find("l.csv:3: column 2: label '1.5' is not an integer"),
            std::string::npos);
  const std::string ragged = write_text("r.csv", "x,y\n1,0\n2,1,3\n");
  EXPECT_NE(error_of([&] { read_csv(ragged, {}); }).find("r.csv:3: expected 2 columns, found 3"),
            std::string::npos);
  const std::string empty = write_text("e.csv", "x,y\n");
  EXPECT_NE(error_of([&] { read_csv(empty, {}); }).find("e.csv: no data rows"), std::string::npos);
  EXPECT_NE(error_of([&] { read_csv(path("missing.csv"), {}); }).find("missing.csv: cannot open"),
            std::string::npos);
}

TEST(Synthetic, SeededUniformFeaturesAndLabels) {
  const Dataset a = make_synthetic(1000, 10, 10, 42);
  const Dataset b = make_synthetic(1000, 10, 10, 42);
  const Dataset c = make_synthetic(1000, 10, 10, 43);
  EXPECT_EQ(a.features, b.features);
  EXPECT_NE(a.features, c.features);
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  EXPECT_NE(a.fingerprint(), c.fingerprint());
  // Float features alone tell copies apart (no bytes: the empty byte array must not reset it).
  Dataset d = a;
  d.features[5] += 1;
  EXPECT_NE(a.fingerprint(), d.fingerprint());
  double mean = 0;
  for (float x : a.features) {
    ASSERT_GE(x, 0);
    ASSERT_LT(x, 1);
    mean += x;
  }
  EXPECT_NEAR(mean / a.features.size(), 0.5, 0.02);
  std::vector<int> counts(10);
  for (int32_t y : a.labels) counts.at(y)++;
  for (int count : counts) EXPECT_GT(count, 60);
}

// min_length: texts of min_length to `length` real ids, in [1, vocabulary), then padding (id 0)
// to the end, lengths spread over the range, each class that of the real ids' majority share.
TEST(Synthetic, PaddedTokens) {
  const int64_t samples = 400, length = 12, vocabulary = 40, classes = 4, min_length = 3;
  const Dataset d = make_synthetic_tokens(samples, length, vocabulary, classes, 9, min_length);
  std::vector<int> lengths(length + 1);
  for (int64_t i = 0; i < samples; ++i) {
    const float* ids = d.features.data() + i * length;
    int64_t real = 0;
    while (real < length && ids[real] != 0) ++real;
    ASSERT_GE(real, min_length) << "sample " << i;
    std::vector<int> counts(classes);
    for (int64_t k = 0; k < length; ++k) {
      if (k >= real) {
        ASSERT_EQ(ids[k], 0) << "sample " << i << " step " << k;
        continue;
      }
      ASSERT_GE(ids[k], 1);
      ASSERT_LT(ids[k], vocabulary);
      ++counts[static_cast<size_t>(ids[k]) * classes / vocabulary];
    }
    EXPECT_EQ(d.labels[i], std::max_element(counts.begin(), counts.end()) - counts.begin());
    ++lengths[real];
  }
  for (int64_t n = min_length; n <= length; ++n) EXPECT_GT(lengths[n], 15) << n << " ids";
  // Without min_length, whole-length texts: id 0 is a token like any other.
  const Dataset whole = make_synthetic_tokens(samples, length, vocabulary, classes, 9);
  EXPECT_GT(std::count(whole.features.begin(), whole.features.end(), 0.0f), 0);
}

TEST(GatherBatch, SparseAndOneHotTargets) {
  const Dataset data = make_synthetic(5, 2, 3, 1);
  const int64_t indices[] = {4, 1};
  float features[4], sparse[2], one_hot[6];
  gather_batch(data, indices, TargetLayout::kClassIndex, 3, features, sparse);
  EXPECT_EQ(features[0], data.features[8]);
  EXPECT_EQ(features[3], data.features[3]);
  EXPECT_EQ(sparse[0], data.labels[4]);
  gather_batch(data, indices, TargetLayout::kOneHot, 3, features, one_hot);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(one_hot[3 + c], c == data.labels[1] ? 1 : 0);
  // Label smoothing 0.3 over 3 classes: 0.1 off the label, 0.8 on it (Keras' and PyTorch's).
  gather_batch(data, indices, TargetLayout::kOneHot, 3, features, one_hot, 0.3f);
  for (int c = 0; c < 3; ++c)
    EXPECT_FLOAT_EQ(one_hot[3 + c], c == data.labels[1] ? 0.8f : 0.1f) << c;
}

TEST(GatherBatch, RegressionTargetsAreTheValuesAndPredictionsNeedNone) {
  Dataset data = make_synthetic(3, 2, 2, 1);
  data.labels.clear();
  data.values = {0.5f, -1, 2.25f, 3, -4, 1e-3f};
  data.label_width = 2;
  const int64_t indices[] = {2, 0};
  float features[4], targets[4] = {9, 9, 9, 9};
  gather_batch(data, indices, TargetLayout::kValues, 2, features, targets);
  EXPECT_EQ(std::vector<float>(targets, targets + 4), (std::vector<float>{-4, 1e-3f, 0.5f, -1}));
  EXPECT_EQ(features[0], data.features[4]);
  // No targets buffer: the features alone (predict's unlabelled rows).
  gather_batch(data, indices, TargetLayout::kValues, 2, features, nullptr);
  EXPECT_EQ(features[3], data.features[1]);
}

// Batches larger than gather_batch's prefetch chunk (64 KB of samples: 65 rows of 1,000 bytes,
// 16 of 1,000 floats), in shuffled order with repeats: every row is its sample, every target its
// label, across the chunks' edges.
TEST(GatherBatch, RowsAcrossPrefetchChunksAreTheirSamples) {
  constexpr int64_t kWidth = 1000, kSamples = 300, kRows = 200;
  Dataset floats = make_synthetic(kSamples, kWidth, 7, 3);
  Dataset bytes = floats;
  bytes.features.clear();
  bytes.byte_scale = 0.5f;
  for (float x : floats.features) bytes.byte_features.push_back(static_cast<uint8_t>(x * 255));
  Rng rng(5);
  std::vector<int64_t> indices(kRows);
  for (int64_t& index : indices) index = static_cast<int64_t>(rng.below(kSamples));
  for (const Dataset* data : {&floats, &bytes}) {
    std::vector<float> features(kRows * kWidth, -1), targets(kRows, -1);
    gather_batch(*data, indices, TargetLayout::kClassIndex, 7, features.data(), targets.data());
    for (int64_t row = 0; row < kRows; ++row) {
      const auto sample = static_cast<size_t>(indices[row]);
      ASSERT_EQ(targets[row], data->labels[sample]) << row;
      for (int64_t k = 0; k < kWidth; ++k)
        ASSERT_EQ(features[row * kWidth + k], data->feature(sample * kWidth + k))
            << (data == &bytes ? "bytes" : "floats") << ", row " << row << ", feature " << k;
    }
  }
}

// IDX images stay bytes until a batch is gathered, scaled then exactly as floats would have been.
TEST(GatherBatch, ByteFeaturesAreScaledAsTheyAreGathered) {
  Dataset data;
  data.sample_shape = Shape{3};
  data.byte_features = {0, 1, 2, 255, 128, 7};
  data.byte_scale = 1.0f / 255;
  data.labels = {0, 1};
  const int64_t indices[] = {1, 0};
  float features[6], targets[2];
  gather_batch(data, indices, TargetLayout::kClassIndex, 2, features, targets);
  const float expected[] = {1.0f, 128 * (1.0f / 255), 7 * (1.0f / 255),
                            0,    1.0f / 255,         2 * (1.0f / 255)};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(features[i], expected[i]) << i;
  EXPECT_EQ(targets[0], 1);
  // The copies' CRCs differ in a byte and in the scale.
  Dataset other = data;
  EXPECT_EQ(other.fingerprint(), data.fingerprint());
  other.byte_scale = 1;
  EXPECT_NE(other.fingerprint(), data.fingerprint());
  other = data;
  other.byte_features[4] = 129;
  EXPECT_NE(other.fingerprint(), data.fingerprint());
}

}  // namespace
}  // namespace ddp
