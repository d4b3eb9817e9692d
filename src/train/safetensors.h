#pragma once
// The safetensors format (Hugging Face): u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
// then the raw tensor bytes. Used to hand weights to and from PyTorch.

#include <map>
#include <string>
#include <vector>

#include "core/shape.h"

namespace ddp {

struct NamedTensor {
  std::string name;
  Shape shape;
  std::vector<float> values;
};

// Writes float32 tensors durably (temporary file + rename). Throws RuntimeError naming the file.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);
// Reads every tensor; only F32 is accepted. Throws CheckpointError naming the file and tensor.
std::vector<NamedTensor> read_safetensors(const std::string& path);

}  // namespace ddp
