#include "train/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/durable_write.h"
#include "core/error.h"
#include "core/input_file.h"
#include "core/json_integer.h"
#include "core/machine.h"

namespace ddp {

static_assert(std::endian::native == std::endian::little,
              "checkpoints are little-endian; a big-endian build needs byte swapping");

namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'D', 'D', 'P', 'C', 'K', 'P', 'T', '1'};
constexpr size_t kHeaderBytes = 24;
constexpr size_t kEntryBytes = 64;
constexpr size_t kNameBytes = 40;
constexpr uint32_t kMaxSections = 64;

uint32_t crc_of(const std::byte* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (size > 0) {
    const auto chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), chunk);
    data += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

template <class T>
void put(std::vector<std::byte>& out, size_t at, T value) {
  std::memcpy(out.data() + at, &value, sizeof value);
}

template <class T>
T get(std::span<const std::byte> in, size_t at) {
  T value;
  std::memcpy(&value, in.data() + at, sizeof value);
  return value;
}

std::span<const std::byte> bytes_of(const std::vector<float>& v) {
  return std::as_bytes(std::span<const float>(v));
}

nlohmann::json signature_json(const std::vector<TensorSignature>& tensors) {
  nlohmann::json signature = nlohmann::json::array();
  for (const TensorSignature& t : tensors)
    signature.push_back({{"name", t.name}, {"shape", t.shape.dims()}, {"torch_hwc", t.hwc}});
  return signature;
}

std::vector<TensorSignature> signature_from_json(const nlohmann::json& json) {
  std::vector<TensorSignature> tensors;
  for (const auto& t : json) {
    std::array<int64_t, 4> hwc{};
    if (t.contains("torch_hwc")) {
      const std::vector<int64_t> values = json_integers<int64_t>(t.at("torch_hwc"));
      if (values.size() != hwc.size())
        throw std::invalid_argument(t.at("torch_hwc").dump() + " is not 4 integers");
      std::copy(values.begin(), values.end(), hwc.begin());
    }
    tensors.push_back({t.at("name"), Shape(json_integers<int64_t>(t.at("shape"))), hwc});
  }
  return tensors;
}

size_t element_count(const std::vector<TensorSignature>& tensors) {
  size_t count = 0;
  for (const TensorSignature& t : tensors) count += static_cast<size_t>(t.shape.numel());
  return count;
}

nlohmann::json meta_json(const TrainingState& s) {
  nlohmann::json meta = {{"epoch", s.epoch},
                         {"step_in_epoch", s.step_in_epoch},
                         {"completed_steps", s.completed_steps},
                         {"epoch_sums", s.epoch_sums},
                         {"world_size", s.world_size},
                         {"batch_mode", s.batch_mode},
                         {"global_batch", s.global_batch},
                         {"per_rank_batch", s.per_rank_batch},
                         {"seed", s.seed},
                         {"signature", signature_json(s.signature)},
                         {"optimizer", s.optimizer},
                         {"optimizer_steps", s.optimizer_steps},
                         {"config", s.config_yaml}};
  if (!s.buffer_signature.empty()) meta["buffers"] = signature_json(s.buffer_signature);
  for (const auto& [name, state] : s.callbacks)
    meta["callbacks"][name] = nlohmann::json::parse(state);
  return meta;
}

}  // namespace

std::vector<std::byte> encode_checkpoint(const TrainingState& state) {
  const std::string meta = meta_json(state).dump();
  std::vector<std::pair<std::string, std::span<const std::byte>>> sections = {
      {"meta", std::as_bytes(std::span<const char>(meta.data(), meta.size()))},
      {"params", bytes_of(state.params)}};
  for (const auto& [name, values] : state.optimizer_state)
    sections.emplace_back("optimizer." + name, bytes_of(values));
  if (!state.buffer_signature.empty()) sections.emplace_back("buffers", bytes_of(state.buffers));
  if (!state.best_params.empty()) {
    sections.emplace_back("best.params", bytes_of(state.best_params));
    if (!state.buffer_signature.empty())
      sections.emplace_back("best.buffers", bytes_of(state.best_buffers));
  }

  auto align = [](size_t n) { return (n + 63) / 64 * 64; };
  size_t offset = align(kHeaderBytes + kEntryBytes * sections.size());
  std::vector<size_t> offsets;
  for (const auto& section : sections) {
    offsets.push_back(offset);
    offset = align(offset + section.second.size());
  }
  std::vector<std::byte> out(offset);
  std::memcpy(out.data(), kMagic, sizeof kMagic);
  put<uint32_t>(out, 8, kCheckpointVersion);
  put<uint32_t>(out, 12, static_cast<uint32_t>(sections.size()));
  for (size_t i = 0; i < sections.size(); ++i) {
    const auto& [name, data] = sections[i];
    const size_t entry = kHeaderBytes + i * kEntryBytes;
    std::memcpy(out.data() + entry, name.data(), std::min(name.size(), kNameBytes - 1));
    put<uint64_t>(out, entry + 40, offsets[i]);
    put<uint64_t>(out, entry + 48, data.size());
    put<uint32_t>(out, entry + 56, crc_of(data.data(), data.size()));
    std::memcpy(out.data() + offsets[i], data.data(), data.size());
  }
  put<uint32_t>(out, 16, crc_of(out.data() + kHeaderBytes, kEntryBytes * sections.size()));
  return out;
}

TrainingState decode_checkpoint(std::span<const std::byte> bytes, const std::string& origin) {
  auto fail = [&origin](const std::string& what) -> CheckpointError {
    return CheckpointError(origin + ": " + what);
  };
  if (bytes.size() < kHeaderBytes)
    throw fail("header: truncated (" + std::to_string(bytes.size()) + " bytes)");
  if (std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw fail("header: not a ddp-trainer checkpoint (wrong magic)");
  const auto version = get<uint32_t>(bytes, 8);
  if (version == 0 || version > kCheckpointVersion)
    throw fail("header: format version " + std::to_string(version) +
               " is not readable by this build (reads version " +
               std::to_string(kCheckpointVersion) + ")");
  const auto count = get<uint32_t>(bytes, 12);
  if (count == 0 || count > kMaxSections) throw fail("header: bad section count");
  if (get<uint32_t>(bytes, 20) != 0) throw fail("header: reserved field is not zero (damaged)");
  if (bytes.size() < kHeaderBytes + kEntryBytes * count) throw fail("section table: truncated");
  if (crc_of(bytes.data() + kHeaderBytes, kEntryBytes * count) != get<uint32_t>(bytes, 16))
    throw fail("section table: checksum mismatch");

  std::vector<std::pair<std::string, std::span<const std::byte>>> sections;
  uint64_t expected_size = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const size_t entry = kHeaderBytes + i * kEntryBytes;
    const char* raw = reinterpret_cast<const char*>(bytes.data() + entry);
    const std::string name(raw, strnlen(raw, kNameBytes));
    const auto offset = get<uint64_t>(bytes, entry + 40);
    const auto size = get<uint64_t>(bytes, entry + 48);
    if (offset > bytes.size() || size > bytes.size() - offset)
      throw fail("section '" + name + "': truncated (file ends before its " + std::to_string(size) +
                 " bytes)");
    if (crc_of(bytes.data() + offset, size) != get<uint32_t>(bytes, entry + 56))
      throw fail("section '" + name + "': checksum mismatch");
    sections.emplace_back(name, bytes.subspan(offset, size));
    expected_size = std::max<uint64_t>(expected_size, (offset + size + 63) / 64 * 64);
  }
  // The writer pads the file to a multiple of 64 bytes; a file that ends elsewhere was cut or
  // appended to, even if every section is intact.
  if (bytes.size() != expected_size)
    throw fail("file is " + std::to_string(bytes.size()) + " bytes, its sections end at " +
               std::to_string(expected_size) + " (truncated or appended to)");
  // Every byte is covered: the header by its checks, the table and the sections by their CRCs,
  // and everything else (alignment padding) must be zero, as the writer leaves it.
  std::vector<std::pair<uint64_t, uint64_t>> covered = {{0, kHeaderBytes + kEntryBytes * count}};
  for (const auto& [name, data] : sections)
    covered.emplace_back(static_cast<uint64_t>(data.data() - bytes.data()), data.size());
  std::sort(covered.begin(), covered.end());
  uint64_t at = 0;
  for (size_t i = 0; i <= covered.size(); ++i) {
    const uint64_t next = i < covered.size() ? covered[i].first : bytes.size();
    for (uint64_t b = at; b < next; ++b)
      if (bytes[b] != std::byte{0})
        throw fail("padding byte at offset " + std::to_string(b) + " is not zero (damaged)");
    if (i < covered.size()) at = std::max(at, covered[i].first + covered[i].second);
  }
  auto section = [&](const std::string& name) -> std::span<const std::byte> {
    for (const auto& s : sections)
      if (s.first == name) return s.second;
    throw fail("section '" + name + "': missing");
  };
  auto floats = [&](const std::string& name, size_t expected) {
    const auto data = section(name);
    if (data.size() != expected * sizeof(float))
      throw fail("section '" + name + "': holds " + std::to_string(data.size() / sizeof(float)) +
                 " floats, the signature needs " + std::to_string(expected));
    std::vector<float> values(expected);
    std::memcpy(values.data(), data.data(), data.size());
    return values;
  };

  TrainingState s;
  try {
    const auto meta_bytes = section("meta");
    const auto meta =
        nlohmann::json::parse(reinterpret_cast<const char*>(meta_bytes.data()),
                              reinterpret_cast<const char*>(meta_bytes.data()) + meta_bytes.size());
    s.epoch = json_integer<decltype(s.epoch)>(meta.at("epoch"));
    s.step_in_epoch = json_integer<decltype(s.step_in_epoch)>(meta.at("step_in_epoch"));
    s.completed_steps = json_integer<decltype(s.completed_steps)>(meta.at("completed_steps"));
    s.epoch_sums = meta.at("epoch_sums").get<std::vector<double>>();
    s.world_size = json_integer<decltype(s.world_size)>(meta.at("world_size"));
    s.batch_mode = meta.at("batch_mode");
    s.global_batch = json_integer<decltype(s.global_batch)>(meta.at("global_batch"));
    s.per_rank_batch = json_integer<decltype(s.per_rank_batch)>(meta.at("per_rank_batch"));
    s.seed = json_integer<decltype(s.seed)>(meta.at("seed"));
    s.signature = signature_from_json(meta.at("signature"));
    s.layouts_recorded = s.signature.empty() || meta.at("signature").front().contains("torch_hwc");
    if (meta.contains("buffers")) s.buffer_signature = signature_from_json(meta.at("buffers"));
    s.optimizer = meta.at("optimizer");
    s.optimizer_steps = json_integer<decltype(s.optimizer_steps)>(meta.at("optimizer_steps"));
    s.config_yaml = meta.at("config");
    if (meta.contains("callbacks"))
      for (const auto& [name, state] : meta.at("callbacks").items())
        s.callbacks[name] = state.dump();
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("section 'meta': ") + e.what());
  } catch (const std::invalid_argument& e) {  // json_integer
    throw fail(std::string("section 'meta': ") + e.what());
  }
  const size_t param_count = element_count(s.signature);
  s.params = floats("params", param_count);
  if (!s.buffer_signature.empty()) s.buffers = floats("buffers", element_count(s.buffer_signature));
  for (const auto& [name, data] : sections) {
    if (name.rfind("optimizer.", 0) == 0)
      s.optimizer_state.emplace_back(name.substr(10), floats(name, param_count));
    if (name == "best.params") s.best_params = floats(name, param_count);
    if (name == "best.buffers") s.best_buffers = floats(name, s.buffers.size());
  }
  return s;
}

std::vector<std::byte> read_file_bytes(const std::string& path) {
  return read_whole_file<CheckpointError>(path);
}

CheckpointDir::CheckpointDir(std::string dir, int64_t keep) : dir_(std::move(dir)), keep_(keep) {}

std::vector<std::string> CheckpointDir::checkpoints_newest_first() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("ckpt-", 0) == 0 && name.size() > 10 &&
        name.compare(name.size() - 5, 5, ".ddpc") == 0)
      names.push_back(name);
  }
  // Zero-padded step numbers: lexicographic order is step order.
  std::sort(names.rbegin(), names.rend());
  return names;
}

std::string CheckpointDir::save(const TrainingState& state) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw RuntimeError(dir_ + ": cannot create checkpoint directory: " + ec.message());
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%012lld.ddpc",
                static_cast<long long>(state.completed_steps));
  const std::string path = dir_ + "/" + name;
  write_file_durably(path, encode_checkpoint(state));
  const std::string pointer = std::string(name) + "\n";
  write_file_durably(dir_ + "/latest",
                     std::as_bytes(std::span<const char>(pointer.data(), pointer.size())));
  // Older checkpoints go only now that the new one and the pointer to it are durable; the new one
  // is never among them, even when a resumed run writes below an abandoned later step.
  std::vector<std::string> others = checkpoints_newest_first();
  std::erase(others, std::string(name));
  for (size_t i = static_cast<size_t>(std::max<int64_t>(keep_ - 1, 0)); i < others.size(); ++i)
    fs::remove(dir_ + "/" + others[i], ec);
  // Temporary files of writers killed mid-write.
  for (const auto& entry : fs::directory_iterator(dir_, ec))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos)
      fs::remove(entry.path(), ec);
  return path;
}

void CheckpointDir::remove_all() const {
  std::error_code ec;
  for (const std::string& name : checkpoints_newest_first()) fs::remove(dir_ + "/" + name, ec);
  fs::remove(dir_ + "/latest", ec);
  for (const auto& entry : fs::directory_iterator(dir_, ec))
    if (entry.path().filename().string().find(".tmp.") != std::string::npos)
      fs::remove(entry.path(), ec);
  fs::remove(dir_, ec);  // only if empty
}

std::optional<CheckpointDir::Found> CheckpointDir::newest_valid(const Unusable& unusable) const {
  std::vector<std::string> candidates;
  std::ifstream pointer(dir_ + "/latest");
  std::string latest;
  if (pointer && std::getline(pointer, latest) && !latest.empty()) candidates.push_back(latest);
  for (const std::string& name : checkpoints_newest_first())
    if (name != latest) candidates.push_back(name);
  if (candidates.empty()) return std::nullopt;

  Found found;
  for (const std::string& name : candidates) {
    const std::string path = dir_ + "/" + name;
    try {
      std::vector<std::byte> bytes = read_file_bytes(path);
      const TrainingState state = decode_checkpoint(bytes, path);
      const std::string why_not = unusable ? unusable(state) : "";
      if (!why_not.empty()) {
        found.rejected.push_back(path + ": " + why_not);
        continue;
      }
      found.path = path;
      found.bytes = std::move(bytes);
      return found;
    } catch (const CheckpointError& e) {
      found.rejected.push_back(e.what());
    }
  }
  throw CheckpointError(dir_ + ": no usable checkpoint (" + std::to_string(candidates.size()) +
                        " tried; newest: " + found.rejected.front() + ")");
}

}  // namespace ddp
