// Checkpoint format, validation of damaged files, the checkpoint directory, safetensors.

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "core/error.h"
#include "core/json_integer.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"

namespace ddp {
namespace {

namespace fs = std::filesystem;

TrainingState sample_state(int64_t step = 7) {
  TrainingState s;
  s.epoch = 1;
  s.step_in_epoch = 3;
  s.completed_steps = step;
  s.epoch_sums = {12.5, 3, 16};
  s.world_size = 2;
  s.batch_mode = "global";
  s.global_batch = 8;
  s.per_rank_batch = 4;
  s.seed = 99;
  s.signature = {{"layers.0.weight", Shape{2, 3}}, {"layers.0.bias", Shape{2}}};
  s.optimizer = "adam";
  s.optimizer_steps = 7;
  s.config_yaml = "seed: 99\n";
  s.params = {1, 2, 3, 4, 5, 6, -1, -2};
  s.optimizer_state = {{"m", std::vector<float>(8, 0.5f)}, {"v", std::vector<float>(8, 0.25f)}};
  return s;
}

std::string decode_error(std::vector<std::byte> bytes) {
  try {
    decode_checkpoint(bytes, "ck.ddpc");
  } catch (const CheckpointError& e) {
    return e.what();
  }
  ADD_FAILURE() << "damaged checkpoint accepted";
  return "";
}

TEST(CheckpointFormat, RoundTrip) {
  const TrainingState s = sample_state();
  const TrainingState r = decode_checkpoint(encode_checkpoint(s), "ck.ddpc");
  EXPECT_EQ(r.epoch, 1);
  EXPECT_EQ(r.step_in_epoch, 3);
  EXPECT_EQ(r.completed_steps, 7);
  EXPECT_EQ(r.epoch_sums, s.epoch_sums);
  EXPECT_EQ(r.world_size, 2);
  EXPECT_EQ(r.batch_mode, "global");
  EXPECT_EQ(r.seed, 99u);
  EXPECT_EQ(r.signature, s.signature);
  EXPECT_EQ(r.optimizer_steps, 7);
  EXPECT_EQ(r.config_yaml, s.config_yaml);
  EXPECT_EQ(r.params, s.params);
  EXPECT_EQ(r.optimizer_state, s.optimizer_state);
  EXPECT_TRUE(r.layouts_recorded);
}

// Note [PyTorch layout] travels with the signature, so ddp_ckpt export needs no model; a
// checkpoint written before that (the fuzz corpus keeps one) says it has no record.
TEST(CheckpointFormat, SignaturesCarryPyTorchLayouts) {
  TrainingState s = sample_state();
  s.signature[0] = {"layers.0.weight", Shape{2, 1, 1, 3}, {2, 1, 1, 3}};
  s.params.resize(8);
  const TrainingState r = decode_checkpoint(encode_checkpoint(s), "ck.ddpc");
  EXPECT_EQ(r.signature[0].hwc, (std::array<int64_t, 4>{2, 1, 1, 3}));
  EXPECT_EQ(r.signature[1].hwc, (std::array<int64_t, 4>{}));
  const TrainingState old = decode_checkpoint(
      read_file_bytes(DDP_SOURCE_DIR "/tests/fuzz/corpus/checkpoint/tiny_adam.ddpc"), "old");
  EXPECT_FALSE(old.layouts_recorded);
}

TEST(CheckpointFormat, HeaderLayout) {
  const std::vector<std::byte> bytes = encode_checkpoint(sample_state());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data()), 8), "DDPCKPT1");
  uint32_t version, sections;
  std::memcpy(&version, bytes.data() + 8, 4);
  std::memcpy(&sections, bytes.data() + 12, 4);
  EXPECT_EQ(version, kCheckpointVersion);
  EXPECT_EQ(sections, 4u);  // meta, params, optimizer.m, optimizer.v
  EXPECT_EQ(bytes.size() % 64, 0u);
}

TEST(CheckpointFormat, EveryTruncationIsRejected) {
  const std::vector<std::byte> bytes = encode_checkpoint(sample_state());
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    const std::string message =
        decode_error(std::vector<std::byte>(bytes.begin(), bytes.begin() + cut));
    EXPECT_NE(message.find("ck.ddpc: "), std::string::npos) << cut;
  }
  // The last section's bytes are missing: named as truncated.
  EXPECT_NE(decode_error(std::vector<std::byte>(bytes.begin(), bytes.end() - 70))
                .find("section 'optimizer.v': truncated"),
            std::string::npos);
}

TEST(CheckpointFormat, FlippedByteNamesTheSection) {
  const TrainingState s = sample_state();
  std::vector<std::byte> bytes = encode_checkpoint(s);
  // Find the params section through the table: entry 1, offset at byte 24 + 64 + 40.
  uint64_t params_offset;
  std::memcpy(&params_offset, bytes.data() + 24 + 64 + 40, 8);
  bytes[params_offset + 5] ^= std::byte{0x10};
  EXPECT_NE(decode_error(bytes).find("ck.ddpc: section 'params': checksum mismatch"),
            std::string::npos);
}

// Note [checkpoint format]: no byte of the file goes unchecked: the header by its fields, the
// table and every section by CRCs, reserved fields and alignment padding by being zero.
TEST(CheckpointFormat, EveryFlippedByteIsRejected) {
  const std::vector<std::byte> good = encode_checkpoint(sample_state());
  for (size_t at = 0; at < good.size(); ++at) {
    std::vector<std::byte> bytes = good;
    bytes[at] ^= std::byte{0x01};
    EXPECT_NE(decode_error(bytes).find("ck.ddpc: "), std::string::npos) << "byte " << at;
  }
  std::vector<std::byte> padded = good;
  padded[good.size() - 1] = std::byte{0x20};  // the last section's padding
  EXPECT_NE(decode_error(padded).find("padding byte at offset " + std::to_string(good.size() - 1)),
            std::string::npos);
}

TEST(CheckpointFormat, WrongMagicNewerVersionAndDamagedTable) {
  std::vector<std::byte> bytes = encode_checkpoint(sample_state());
  auto magic = bytes;
  magic[0] = std::byte{'X'};
  EXPECT_NE(decode_error(magic).find("wrong magic"), std::string::npos);
  auto newer = bytes;
  const uint32_t v2 = kCheckpointVersion + 1;
  std::memcpy(newer.data() + 8, &v2, 4);
  EXPECT_NE(decode_error(newer).find("format version 2 is not readable by this build"),
            std::string::npos);
  auto table = bytes;
  table[24 + 3] ^= std::byte{1};  // a section name
  EXPECT_NE(decode_error(table).find("section table: checksum mismatch"), std::string::npos);
}

class CheckpointDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("ddp_ckpt_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())))
               .string();
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CheckpointDirTest, KeepsTheNewestAndPointsLatestAtIt) {
  CheckpointDir store(dir_, 2);
  EXPECT_FALSE(store.newest_valid().has_value());
  for (int64_t step : {10, 20, 30}) store.save(sample_state(step));
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ckpt-000000000020.ddpc", "ckpt-000000000030.ddpc",
                                             "latest"}));
  const auto found = store.newest_valid();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, dir_ + "/ckpt-000000000030.ddpc");
  EXPECT_TRUE(found->rejected.empty());
}

TEST_F(CheckpointDirTest, FallsBackPastADamagedLatest) {
  CheckpointDir store(dir_, 3);
  store.save(sample_state(10));
  const std::string newest = store.save(sample_state(20));
  fs::resize_file(newest, fs::file_size(newest) / 2);
  const auto found = store.newest_valid();
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->path, dir_ + "/ckpt-000000000010.ddpc");
  ASSERT_EQ(found->rejected.size(), 1u);
  EXPECT_NE(found->rejected[0].find("ckpt-000000000020.ddpc: section"), std::string::npos)
      << found->rejected[0];
}

TEST_F(CheckpointDirTest, NoValidCheckpointIsAnError) {
  CheckpointDir store(dir_, 3);
  const std::string only = store.save(sample_state(10));
  std::ofstream(only, std::ios::binary | std::ios::trunc) << "garbage";
  try {
    store.newest_valid();
    ADD_FAILURE();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("no usable checkpoint"), std::string::npos);
  }
}

TEST_F(CheckpointDirTest, LeftoverTemporaryFilesAreIgnoredAndCleaned) {
  CheckpointDir store(dir_, 2);
  store.save(sample_state(10));
  const std::string stale = dir_ + "/ckpt-000000000020.ddpc.tmp.12345";
  std::ofstream(stale) << "half-written";
  EXPECT_EQ(store.newest_valid()->path, dir_ + "/ckpt-000000000010.ddpc");
  store.save(sample_state(30));
  EXPECT_FALSE(fs::exists(stale));
}

TEST_F(CheckpointDirTest, UnwritableDirectoryIsAClearError) {
  CheckpointDir store("/proc/ddp_no_such_dir", 2);
  try {
    store.save(sample_state());
    ADD_FAILURE();
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("/proc/ddp_no_such_dir"), std::string::npos);
  }
}

TEST_F(CheckpointDirTest, SafetensorsRoundTrip) {
  fs::create_directories(dir_);
  const std::string path = dir_ + "/w.safetensors";
  write_safetensors(path, {{"a", Shape{2, 2}, {1, 2, 3, 4}}, {"b", Shape{3}, {5, 6, 7}}},
                    {{"format", "pt"}});
  const std::vector<NamedTensor> read = read_safetensors(path);
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].name, "a");
  EXPECT_EQ(read[0].shape, (Shape{2, 2}));
  EXPECT_EQ(read[1].values, (std::vector<float>{5, 6, 7}));
  uint64_t header_length;
  std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(&header_length), 8);
  EXPECT_EQ((8 + header_length) % 8, 0u);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "\x08\0\0\0\0\0\0\0{bad json";
  EXPECT_THROW(read_safetensors(path), CheckpointError);
}

// Shapes are input too: a product that wraps around 64 bits ((2^62 + 1) x 4 bytes = 4 bytes) or
// negative dimensions whose product looks right must not reach an allocation or a model.
TEST_F(CheckpointDirTest, SafetensorsShapesAreCheckedAsTheyMultiply) {
  fs::create_directories(dir_);
  const std::string path = dir_ + "/hostile.safetensors";
  auto write = [&path](const std::string& header) {
    std::string bytes(8, '\0');
    const uint64_t length = header.size();
    std::memcpy(bytes.data(), &length, 8);
    bytes += header + std::string(16, '\0');  // 16 bytes of data: four floats
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  };
  auto error = [&path]() -> std::string {
    try {
      read_safetensors(path);
    } catch (const CheckpointError& e) {
      return e.what();
    }
    return "no CheckpointError";
  };
  write(R"({"w": {"dtype": "F32", "shape": [4611686018427387905], "data_offsets": [0, 4]}})");
  EXPECT_NE(error().find("w: shape (4611686018427387905) holds more values than the file"),
            std::string::npos)
      << error();
  write(R"({"w": {"dtype": "F32", "shape": [-1, -4], "data_offsets": [0, 16]}})");
  EXPECT_NE(error().find("w: shape (-1, -4) has a negative dimension"), std::string::npos)
      << error();
  // Numbers where integers belong: a float that would round to the honest value, and one no
  // integer type holds (found by fuzz_safetensors: converting it was undefined behaviour).
  write(R"({"w": {"dtype": "F32", "shape": [2.5, 2], "data_offsets": [0, 16]}})");
  EXPECT_NE(error().find("w: shape [2.5,2] is not a list of integers"), std::string::npos)
      << error();
  write(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16.0]}})");
  EXPECT_NE(error().find("w: data offsets [0,16.0] are not two byte offsets"), std::string::npos)
      << error();
  write(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 2e69]}})");
  EXPECT_NE(error().find("are not two byte offsets"), std::string::npos) << error();
  write(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})");
  EXPECT_EQ(read_safetensors(path)[0].values.size(), 4u);  // the same file, honest, is read
}

// Integers in files' JSON: floats and values out of the type's range are refused, not cast.
TEST(JsonInteger, TakesIntegersInRangeAndRefusesTheRest) {
  using nlohmann::json;
  EXPECT_EQ(json_integer<int64_t>(json::parse("42")), 42);
  EXPECT_EQ(json_integer<int64_t>(json::parse("-7")), -7);
  EXPECT_EQ(json_integer<uint64_t>(json::parse("18446744073709551615")),
            std::numeric_limits<uint64_t>::max());
  for (const char* bad : {"16.0", "2e69", "-1", "\"3\"", "true", "null", "[1]"})
    EXPECT_THROW(json_integer<uint64_t>(json::parse(bad)), std::invalid_argument) << bad;
  EXPECT_THROW(json_integer<int64_t>(json::parse("9223372036854775808")), std::invalid_argument);
  EXPECT_THROW(json_integer<int32_t>(json::parse("2147483648")), std::invalid_argument);
  EXPECT_EQ(json_integers<int64_t>(json::parse("[2, 3]")), (std::vector<int64_t>{2, 3}));
  EXPECT_THROW(json_integers<int64_t>(json::parse("[2, 2.5]")), std::invalid_argument);
  EXPECT_THROW(json_integers<int64_t>(json::parse("{}")), std::invalid_argument);
}

}  // namespace
}  // namespace ddp
