// NumPy data (Note [npy format]): .npy files and .npz archives of every supported dtype and byte
// order read into the same Dataset as the other readers; every malformed header, dtype, shape
// mismatch and truncation is a DataError naming the file (and the archive member).

#include <gtest/gtest.h>
#include <zip.h>

#include <unistd.h>

#include <csignal>

#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "core/error.h"
#include "data/npy_reader.h"
#include "small_trainer_config.h"

namespace ddp {
namespace {

// A .npy file's bytes: version 1.0 header for `descr` and `shape` (a Python tuple literal), then
// `data` as given (the caller lays out its byte order).
std::string npy(const std::string& descr, const std::string& shape, const std::string& data,
                const std::string& fortran = "False") {
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

template <class T>
std::string raw(std::initializer_list<T> values, bool big_endian = false) {
  std::string out;
  for (T v : values) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof v);
    if (big_endian) std::reverse(b, b + sizeof b);
    out.append(b, sizeof b);
  }
  return out;
}

class NumpyData : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = testing::TempDir() + "/" + name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return path;
  }
  // An .npz archive of `members` (name, .npy bytes), deflated as np.savez_compressed writes it.
  std::string write_npz(const std::string& name,
                        const std::vector<std::pair<std::string, std::string>>& members) {
    const std::string path = testing::TempDir() + "/" + name;
    int error = 0;
    zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    EXPECT_NE(archive, nullptr);
    for (const auto& [member, bytes] : members) {
      zip_source_t* source = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
      const zip_int64_t index = zip_file_add(archive, member.c_str(), source, ZIP_FL_OVERWRITE);
      EXPECT_GE(index, 0);
      zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), ZIP_CM_DEFLATE, 0);
    }
    EXPECT_EQ(zip_close(archive), 0);
    return path;
  }
  std::string error_of(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const DataError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no DataError";
    return "";
  }
};

TEST_F(NumpyData, ReadsImagesAndClassLabels) {
  const std::string x = write(
      "x.npy", npy("|u1", "(2, 2, 3)", raw<uint8_t>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255})));
  const std::string y = write("y.npy", npy("<i8", "(2,)", raw<int64_t>({7, 3})));
  const Dataset data = read_npy(x, y, 0.5f);
  EXPECT_EQ(data.size(), 2);
  EXPECT_EQ(data.sample_shape, (Shape{2, 3}));
  EXPECT_FLOAT_EQ(data.feature(11), 127.5f);  // read in place: uint8 times the scale
  EXPECT_TRUE(data.byte_valued());
  EXPECT_EQ(data.labels, (std::vector<int32_t>{7, 3}));
  EXPECT_EQ(data.label_width, 1);
}

TEST_F(NumpyData, ReadsBigEndianFloatsAndMultiHotLabels) {
  const std::string x =
      write("xb.npy", npy(">f8", "(2, 2)", raw<double>({1.5, -2, 3, 4.25}, true)));
  const std::string y =
      write("yb.npy", npy(">i2", "(2, 3)", raw<int16_t>({1, 0, 1, 0, 0, 1}, true)));
  const Dataset data = read_npy(x, y, 1);
  EXPECT_EQ(data.features, (std::vector<float>{1.5f, -2, 3, 4.25f}));
  EXPECT_EQ(data.label_width, 3);
  EXPECT_EQ(data.labels, (std::vector<int32_t>{1, 0, 1, 0, 0, 1}));
}

// Note [sample weights]: a weights file of any numeric dtype, one number per sample.
TEST_F(NumpyData, SampleWeightsFromAnyNumericDtype) {
  EXPECT_EQ(read_npy_sample_weights(
                write("w8.npy", npy(">f8", "(3,)", raw<double>({0.5, 0, 2.25}, true))), 3),
            (std::vector<float>{0.5f, 0, 2.25f}));
  EXPECT_EQ(read_npy_sample_weights(write("wi.npy", npy("<i4", "(2,)", raw<int32_t>({3, 1}))), 2),
            (std::vector<float>{3, 1}));
  const std::string wide = write("ww.npy", npy("<f4", "(2, 1)", raw<float>({1, 2})));
  EXPECT_EQ(error_of([&] { read_npy_sample_weights(wide, 2); }),
            wide + ": sample weights need shape (samples), got 2 dimensions");
  const std::string few = write("wf.npy", npy("<f4", "(2,)", raw<float>({1, 2})));
  EXPECT_EQ(error_of([&] { read_npy_sample_weights(few, 3); }),
            few + ": 2 sample weights for 3 samples: give one weight per sample");
  const std::string negative = write("wn.npy", npy("<f4", "(3,)", raw<float>({1, -0.5f, 2})));
  EXPECT_EQ(error_of([&] { read_npy_sample_weights(negative, 3); }),
            negative + ": the weight of sample 1 is -0.500000; sample weights must be finite " +
                "and >= 0");
  const std::string huge = write("wh.npy", npy("<f8", "(1,)", raw<double>({1e300})));
  EXPECT_EQ(error_of([&] { read_npy_sample_weights(huge, 1); }),
            huge + ": the weight of sample 0 is inf; sample weights must be finite and >= 0");
}

TEST_F(NumpyData, FloatLabelsAreRegressionTargets) {
  const std::string x = write("xr.npy", npy("<f4", "(3,)", raw<float>({1, 2, 3})));
  const std::string y =
      write("yr.npy", npy("<f8", "(3, 2)", raw<double>({0.5, -1.25, 2, 1e-3, -7, 3.5})));
  const Dataset data = read_npy(x, y, 1);
  EXPECT_TRUE(data.real_valued());
  EXPECT_TRUE(data.labels.empty());
  EXPECT_EQ(data.size(), 3);
  EXPECT_EQ(data.label_width, 2);
  EXPECT_EQ(data.values, (std::vector<float>{0.5f, -1.25f, 2, 1e-3f, -7, 3.5f}));
  // Keras' y of any rank, flattened per sample: images as an autoencoder's targets.
  const std::string images =
      write("y4.npy", npy("<f4", "(3, 1, 2, 1)", raw<float>({0.5, -1.25, 2, 1e-3f, -7, 3.5})));
  const Dataset targets = read_npy(x, images, 1);
  EXPECT_EQ(targets.label_width, 2);
  EXPECT_EQ(targets.values, data.values);
  const std::string none = write("y0.npy", npy("<f4", "(3, 2, 0)", ""));
  EXPECT_NE(error_of([&] { read_npy(x, none, 1); }).find("y0.npy: 0 labels per sample"),
            std::string::npos);
  const std::string inf = write("yi.npy", npy("<f8", "(3,)", raw<double>({0, 1e300, 1})));
  EXPECT_NE(error_of([&] {
              read_npy(x, inf, 1);
            }).find("yi.npy: target value 1 is not finite as a float32"),
            std::string::npos);
}

TEST_F(NumpyData, ReadsCompressedNpzMembers) {
  const std::string path =
      write_npz("d.npz", {{"x.npy", npy("<f4", "(3,)", raw<float>({0.25f, 0.5f, 1}))},
                          {"y.npy", npy("|b1", "(3, 1)", raw<uint8_t>({1, 0, 1}))}});
  const Dataset data = read_npz(path, "x", "y", 2);
  EXPECT_EQ(data.sample_shape, (Shape{1}));
  EXPECT_EQ(data.features, (std::vector<float>{0.5f, 1, 2}));
  EXPECT_EQ(data.labels, (std::vector<int32_t>{1, 0, 1}));
  EXPECT_NE(error_of([&] { read_npz(path, "images", "y", 1); })
                .find("d.npz: images.npy: no such "
                      "array in the archive"),
            std::string::npos);
  const std::string not_zip = write("n.npz", "plain text");
  EXPECT_NE(error_of([&] { read_npz(not_zip, "x", "y", 1); }).find("n.npz: not a readable .npz"),
            std::string::npos);
}

// Note [mapped features]: float32 and uint8 features are read in place, and batches, features and
// fingerprints are those of the same values held in memory (here: the big-endian copy, which is
// converted).
TEST_F(NumpyData, MappedFeaturesReadAsTheCopiedOnes) {
  std::vector<float> values(40 * 6);
  std::mt19937 rng(3);
  for (float& v : values) v = std::uniform_real_distribution<float>(-2, 2)(rng);
  std::string little, big;
  for (float v : values) {
    little += raw<float>({v});
    big += raw<float>({v}, true);
  }
  std::string labels;
  for (int i = 0; i < 40; ++i) labels += raw<int32_t>({i % 3});
  const std::string y = write("my.npy", npy("<i4", "(40,)", labels));
  const Dataset mapped = read_npy(write("ml.npy", npy("<f4", "(40, 6)", little)), y, 1);
  const Dataset copied = read_npy(write("mb.npy", npy(">f4", "(40, 6)", big)), y, 1);
  ASSERT_NE(mapped.mapping, nullptr);
  EXPECT_EQ(copied.mapping, nullptr);
  EXPECT_TRUE(mapped.features.empty());
  EXPECT_EQ(copied.features, values);
  for (size_t i = 0; i < values.size(); ++i) ASSERT_EQ(mapped.feature(i), values[i]) << i;
  EXPECT_EQ(mapped.fingerprint(), copied.fingerprint());
  const int64_t rows[] = {39, 0, 17, 17};
  float a[24], b[24], ta[4], tb[4];
  gather_batch(mapped, rows, TargetLayout::kClassIndex, 3, a, ta);
  gather_batch(copied, rows, TargetLayout::kClassIndex, 3, b, tb);
  EXPECT_EQ(std::memcmp(a, b, sizeof a), 0);
  EXPECT_EQ(std::memcmp(ta, tb, sizeof ta), 0);
  // A non-finite value is refused as when converted; a scale other than 1 converts.
  little.replace(4 * 7, 4, raw<float>({INFINITY}));
  EXPECT_NE(error_of([&] {
              read_npy(write("mi.npy", npy("<f4", "(40, 6)", little)), y, 1);
            }).find("mi.npy: value 7 is not finite"),
            std::string::npos);
  EXPECT_EQ(read_npy(write("ml.npy", npy("<f4", "(40, 6)", big)), y, 0.5f).mapping, nullptr);
}

// The resident memory a process owns (not file pages it shares), in bytes.
int64_t anonymous_resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("RssAnon:", 0) == 0) return std::stoll(line.substr(8)) * 1024;
  ADD_FAILURE() << "no RssAnon in /proc/self/status";
  return -1;
}

// 64 MB of float32 features cost this process no memory of its own: the pages are the file's,
// shared with every other rank of the host (each of which would otherwise hold 64 MB).
TEST_F(NumpyData, MappedFeaturesTakeNoMemoryOfTheirOwn) {
  const std::string x = write("big.npy", npy("<f4", "(16384, 1024)", std::string(64 << 20, '\0')));
  const std::string y = write("big_y.npy", npy("|u1", "(16384,)", std::string(16384, '\1')));
  const int64_t before = anonymous_resident_bytes();
  const Dataset data = read_npy(x, y, 1);
  const int64_t grew = anonymous_resident_bytes() - before;
  EXPECT_EQ(data.size(), 16384);
  EXPECT_EQ(data.feature(16384 * 1024 - 1), 0.0f);  // every page read (the finiteness check)
  EXPECT_LT(grew, 8 << 20) << "read_npy took " << grew << " bytes";
  std::remove(x.c_str());
}

// A file truncated under the mapping: the next read of a lost page ends the process with the
// bad-data code and a line naming the file, not a crash.
TEST_F(NumpyData, AMappedFileThatShrinksEndsTheRunNamingIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::string x = write("shrinks.npy", npy("|u1", "(8192, 4)", std::string(32768, '\2')));
  const std::string y = write("shrinks_y.npy", npy("|u1", "(8192,)", std::string(8192, '\1')));
  EXPECT_EXIT(
      {
        error_line_prefix() = "[rank 1 on node7] ";  // as ddp_train sets it
        const Dataset data = read_npy(x, y, 1);
        if (truncate(x.c_str(), 0) != 0) _exit(9);
        volatile float sum = 0;
        for (size_t i = 0; i < 32768; i += 4096) sum = sum + data.feature(i);
        _exit(0);
      },
      ::testing::ExitedWithCode(3),
      "^\\[rank 1 on node7\\] ddp-trainer: error: .*shrinks.npy: the file changed \\(shrank\\) "
      "while training read it");
  // Any other SIGBUS goes to the handler before (here the default: the process dies of it).
  EXPECT_EXIT(
      {
        const Dataset data = read_npy(x, y, 1);
        raise(SIGBUS);
        _exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}

// A mapped file rewritten in place (same size) is caught before the next epoch and before the next
// checkpoint, naming it (Note [mapped features]); one replaced by a rename is not an error (the
// mapping keeps the old bytes).
TEST_F(NumpyData, AMappedFileRewrittenInPlaceStopsTheRunNamingIt) {
  std::string features;
  for (int i = 0; i < 40 * 10; ++i) features += raw<float>({static_cast<float>(i % 13) / 13});
  std::string labels;
  for (int i = 0; i < 40; ++i) labels += raw<int32_t>({i % 10});
  const std::string x = write("rewritten.npy", npy("<f4", "(40, 10)", features));
  const std::string y = write("rewritten_y.npy", npy("<i4", "(40,)", labels));
  const Config config = test::small_config(
      {"data.train={type: npy, features: " + x + ", labels: " + y + "}"}, "mapped.yaml");
  const auto trainer_of = [&config] {
    static auto backend = make_cpu_backend();
    static auto comm = make_local_communicator();
    return std::make_unique<Trainer>(config, *comm, *backend, load_dataset(config.train_data, 0),
                                     std::nullopt);
  };
  // Timestamps tick in steps of a few milliseconds: wait out the one the file was written in.
  const auto rewrite = [&x, &features](char byte, bool by_rename) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    std::string changed = npy("<f4", "(40, 10)", features);
    changed[changed.size() - 1] = byte;
    if (!by_rename) {
      std::fstream(x, std::ios::in | std::ios::out | std::ios::binary) << changed;
    } else {
      std::ofstream(x + ".new", std::ios::binary) << changed;
      ASSERT_EQ(std::rename((x + ".new").c_str(), x.c_str()), 0);
    }
  };
  auto trainer = trainer_of();  // 2 steps an epoch
  trainer->train_steps(1);
  rewrite('\x40', false);
  trainer->train_steps(1);  // the same epoch: read as it now is
  EXPECT_EQ(error_of([&] { trainer->train_steps(1); }),
            x + ": the file was modified while training read it (rewritten in place)");
  trainer = trainer_of();
  int checkpoints = 0;
  trainer->set_checkpointing({}, [&checkpoints](Trainer&) { ++checkpoints; });
  trainer->fit(1);  // a checkpoint after the first step
  EXPECT_EQ(checkpoints, 1);
  rewrite('\x42', false);
  // The epoch's second step, then its checkpoint: refused.
  EXPECT_EQ(error_of([&] { trainer->fit(2); }),
            x + ": the file was modified while training read it (rewritten in place)");
  EXPECT_EQ(checkpoints, 1);
  trainer = trainer_of();
  rewrite('\x43', true);
  EXPECT_NO_THROW(trainer->train_steps(4));
}

// Each malformed input and the words its error must contain.
TEST_F(NumpyData, MalformedInputNamesTheFileAndTheProblem) {
  const std::string labels = write("ok_y.npy", npy("|u1", "(2,)", raw<uint8_t>({0, 1})));
  const std::string two = raw<float>({1, 2});
  std::string version_7 = npy("<f4", "(2,)", two);
  version_7[6] = 7;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no magic here at all", "not a .npy file"},
      {npy("<f4", "(2,)", two, "True"), "Fortran order"},
      {npy("<c8", "(2,)", two), "dtype '<c8' is not supported"},
      {npy("<f4", "(3,)", two), "truncated"},
      {npy("<f4", "(1,)", two), "trailing bytes"},
      {npy("<f4", "(4294967296, 4294967296)", two), "truncated"},
      {npy("<f4", "(2,", two), "malformed"},
      {npy("<f4", "(2,)", two).substr(0, 12), "truncated in the header"},
      {version_7, "version 7"},
      {npy("<f4", "(2,)", raw<float>({1, std::numeric_limits<float>::infinity()})), "not finite"},
  };
  for (const auto& [bytes, expected] : cases) {
    const std::string x = write("bad.npy", bytes);
    const std::string message = error_of([&] { read_npy(x, labels, 1); });
    EXPECT_NE(message.find("bad.npy: "), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << expected << " / " << message;
  }
  const std::string x = write("x3.npy", npy("<f4", "(3,)", raw<float>({1, 2, 3})));
  EXPECT_NE(error_of([&] { read_npy(x, labels, 1); }).find("has 3 samples but"), std::string::npos);
}

}  // namespace
}  // namespace ddp
