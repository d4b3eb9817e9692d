// TensorBoard event files (Note [TensorBoard events]) checked without TensorBoard: the TFRecord
// framing and its masked CRC-32C against a bitwise CRC written here and the standard check
// value, and the records parsed back with the schema's generated classes.

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "train/tensorboard_event.pb.h"
#include "train/tensorboard_writer.h"

namespace ddp {
namespace {

uint32_t bitwise_crc32c(const std::string& bytes) {
  uint32_t crc = 0xffffffffu;
  for (const unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint32_t masked(const std::string& bytes) {
  return masked_crc32c(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

// Every record of an events file, each checked against its two CRCs.
std::vector<tensorboard::Event> read_events(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string blob{std::istreambuf_iterator<char>(in), {}};
  std::vector<tensorboard::Event> events;
  size_t at = 0;
  while (at < blob.size()) {
    EXPECT_LE(at + 12, blob.size()) << "truncated header";
    uint64_t length = 0;
    uint32_t length_crc = 0, data_crc = 0;
    std::memcpy(&length, blob.data() + at, 8);
    std::memcpy(&length_crc, blob.data() + at + 8, 4);
    EXPECT_EQ(length_crc, mask(bitwise_crc32c(blob.substr(at, 8))));
    const std::string data = blob.substr(at + 12, length);
    std::memcpy(&data_crc, blob.data() + at + 12 + length, 4);
    EXPECT_EQ(data_crc, mask(bitwise_crc32c(data)));
    tensorboard::Event event;
    EXPECT_TRUE(event.ParseFromString(data));
    events.push_back(event);
    at += 12 + length + 4;
  }
  EXPECT_EQ(at, blob.size());
  return events;
}

TEST(TensorBoard, MaskedCrc32cMatchesTheStandardCheckValue) {
  EXPECT_EQ(bitwise_crc32c("123456789"), 0xe3069283u);  // CRC-32C's published check value
  EXPECT_EQ(masked("123456789"), mask(0xe3069283u));
  const std::string long_text(1000, 'x');  // past the 8-byte words
  EXPECT_EQ(masked(long_text), mask(bitwise_crc32c(long_text)));
  EXPECT_EQ(masked(""), mask(0));
}

TEST(TensorBoard, EventsFileHoldsTheVersionAndScalars) {
  const std::string dir = ::testing::TempDir() + "tb_events";
  std::filesystem::remove_all(dir);
  std::string path;
  {
    TensorBoardWriter writer(dir, 0);
    writer.scalar("epoch/loss", 7, 1.5);
    writer.scalar("step/loss", 8, 0.0);  // a zero is still a scalar
    path = writer.path();
  }
  const std::vector<tensorboard::Event> events = read_events(path);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].file_version(), "brain.Event:2");
  EXPECT_GT(events[0].wall_time(), 1.6e9);
  ASSERT_TRUE(events[1].has_summary());
  EXPECT_EQ(events[1].step(), 7);
  EXPECT_EQ(events[1].summary().value(0).tag(), "epoch/loss");
  EXPECT_EQ(events[1].summary().value(0).simple_value(), 1.5f);
  EXPECT_EQ(events[2].summary().value(0).value_case(), tensorboard::Summary::Value::kSimpleValue);
  std::filesystem::remove_all(dir);
}

TEST(TensorBoard, ResumedRunStartsAtItsFirstStep) {
  const std::string dir = ::testing::TempDir() + "tb_resumed";
  std::filesystem::remove_all(dir);
  std::string path;
  {
    TensorBoardWriter writer(dir, 100);
    path = writer.path();
  }
  const std::vector<tensorboard::Event> events = read_events(path);
  ASSERT_EQ(events.size(), 2u);
  ASSERT_TRUE(events[1].has_session_log());
  EXPECT_EQ(events[1].session_log().status(), tensorboard::SessionLog::START);
  EXPECT_EQ(events[1].step(), 101);
  std::filesystem::remove_all(dir);
}

TEST(TensorBoard, UnwritableDirectoryIsARuntimeErrorNamingIt) {
  try {
    TensorBoardWriter writer("/proc/no/such/dir", 0);
    FAIL() << "wrote under /proc";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("/proc/no/such/dir"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddp
