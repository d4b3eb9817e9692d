#include "train/safetensors.h"

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>

#include "core/durable_write.h"
#include "core/error.h"
#include "core/json_integer.h"
#include "train/checkpoint.h"

namespace ddp {

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const NamedTensor& t : tensors) {
    const size_t bytes = t.values.size() * sizeof(float);
    header[t.name] = {
        {"dtype", "F32"}, {"shape", t.shape.dims()}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the spec allows
  std::vector<std::byte> out(8 + text.size() + offset);
  const uint64_t length = text.size();
  std::memcpy(out.data(), &length, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  size_t at = 8 + text.size();
  for (const NamedTensor& t : tensors) {
    std::memcpy(out.data() + at, t.values.data(), t.values.size() * sizeof(float));
    at += t.values.size() * sizeof(float);
  }
  write_file_durably(path, out);
}

std::vector<NamedTensor> read_safetensors(const std::string& path) {
  const std::vector<std::byte> bytes = read_file_bytes(path);
  auto fail = [&path](const std::string& what) { return CheckpointError(path + ": " + what); };
  if (bytes.size() < 8) throw fail("not a safetensors file (shorter than its length prefix)");
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  if (length > bytes.size() - 8) throw fail("not a safetensors file (header length past the end)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes.data()) + 8,
                                   reinterpret_cast<const char*>(bytes.data()) + 8 + length);
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not valid JSON: ") + e.what());
  }
  const size_t data_start = 8 + length;
  std::vector<NamedTensor> tensors;
  for (const auto& [name, info] : header.items()) {
    // PyTorch's BatchNorm keeps a step count (I64) beside its running statistics; ddp-trainer's
    // momentum is fixed, so it has no use for it, and a state_dict saved as it is still loads.
    const std::string_view step_count = ".num_batches_tracked";
    if (name == "__metadata__" || (name.size() > step_count.size() && name.ends_with(step_count)))
      continue;
    try {
      if (info.at("dtype") != "F32")
        throw fail(name + ": dtype " + info.at("dtype").dump() + " is not supported (F32 only)");
      std::vector<int64_t> dims;
      try {
        dims = json_integers<int64_t>(info.at("shape"));
      } catch (const std::invalid_argument&) {
        throw fail(name + ": shape " + info.at("shape").dump() + " is not a list of integers");
      }
      NamedTensor t{name, Shape(std::move(dims)), {}};
      // The element count, checked as it is multiplied: no shape may claim more floats than the
      // file holds (a product that wrapped around could otherwise match the offsets).
      const uint64_t available = (bytes.size() - data_start) / sizeof(float);
      uint64_t count = 1;
      for (const int64_t d : t.shape.dims()) {
        if (d < 0) throw fail(name + ": shape " + t.shape.str() + " has a negative dimension");
        if (d != 0 && count > available / static_cast<uint64_t>(d))
          throw fail(name + ": shape " + t.shape.str() + " holds more values than the file");
        count *= static_cast<uint64_t>(d);
      }
      const nlohmann::json& offsets = info.at("data_offsets");
      uint64_t begin = 0, end = 0;
      try {
        begin = json_integer<uint64_t>(offsets.at(0));
        end = json_integer<uint64_t>(offsets.at(1));
      } catch (const std::invalid_argument&) {
        throw fail(name + ": data offsets " + offsets.dump() + " are not two byte offsets");
      }
      if (begin > end || end > bytes.size() - data_start || end - begin != count * sizeof(float))
        throw fail(name + ": data offsets do not match its shape " + t.shape.str());
      t.values.resize(static_cast<size_t>(t.shape.numel()));
      std::memcpy(t.values.data(), bytes.data() + data_start + begin, end - begin);
      tensors.push_back(std::move(t));
    } catch (const nlohmann::json::exception& e) {
      throw fail(name + ": " + e.what());
    }
  }
  return tensors;
}

}  // namespace ddp
