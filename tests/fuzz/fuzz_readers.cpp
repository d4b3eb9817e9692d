// libFuzzer targets for everything that parses untrusted input. One source, one binary per target
// (FUZZ_TARGET selects): idx, csv, npy, npz, config, keras, checkpoint, safetensors. A finding is
// any crash, sanitizer report, hang or exception other than the typed errors the readers are
// documented to throw.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "data/dataset.h"
#include "data/npy_reader.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/safetensors.h"

namespace {

// The readers take paths: hand them the input through a file.
[[maybe_unused]] std::string as_file(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = "/tmp/ddp_fuzz_" + std::to_string(::getpid()) + suffix;
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ddp;
  try {
#if FUZZ_TARGET_IDX
    // The first byte splits the input into an image file and a label file.
    const size_t split = size ? std::min<size_t>(data[0] * 4u, size - 1) + 1 : 0;
    const std::string images = as_file(data + (size ? 1 : 0), split > 0 ? split - 1 : 0, ".img");
    const std::string labels = as_file(data + split, size - split, ".lbl");
    const Dataset d = read_idx(images, labels, 1.0f / 255);
    d.check_labels(10, TargetLayout::kClassIndex, false);
#elif FUZZ_TARGET_CSV
    const Dataset d = read_csv(as_file(data, size, ".csv"), {});
    d.check_labels(10, TargetLayout::kClassIndex, false);
#elif FUZZ_TARGET_NPY
    // The first byte splits the input into a features file and a labels file, as for IDX.
    const size_t split = size ? std::min<size_t>(data[0] * 4u, size - 1) + 1 : 0;
    const std::string x = as_file(data + (size ? 1 : 0), split > 0 ? split - 1 : 0, "_x.npy");
    const std::string y = as_file(data + split, size - split, "_y.npy");
    read_npy(x, y, 1.0f / 255).check_labels(10, TargetLayout::kClassIndex, false);
#elif FUZZ_TARGET_NPZ
    read_npz(as_file(data, size, ".npz"), "x", "y", 1)
        .check_labels(10, TargetLayout::kClassIndex, false);
#elif FUZZ_TARGET_CONFIG
    const std::string text(reinterpret_cast<const char*>(data), size);
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception&) {
      return 0;  // load_config reports these as ConfigErrors; not the parser under test
    }
    parse_config(root, "fuzz.yaml");
#elif FUZZ_TARGET_KERAS
    // A .keras file's config.json (Note [Keras model config], Note [Keras functional models]):
    // Keras' Sequential and functional models, compile_config among them, read into the layers
    // of a model config and parsed as one.
    const auto config = nlohmann::json::parse(data, data + size, nullptr, false);
    if (config.is_discarded()) return 0;  // not JSON: the archive reader's error
    const keras::KerasModel model = keras::keras_model_from_config(config, "fuzz.keras", true);
    YAML::Node root;
    root["model"]["input"] = model.input_shape;
    for (const keras::Spec& layer : model.layers) root["model"]["layers"].push_back(layer.node);
    parse_model_config(root, "fuzz.keras");
#elif FUZZ_TARGET_CHECKPOINT
    decode_checkpoint({reinterpret_cast<const std::byte*>(data), size}, "fuzz.ddpc");
#elif FUZZ_TARGET_SAFETENSORS
    read_safetensors(as_file(data, size, ".safetensors"));
#else
#error "define one FUZZ_TARGET_*"
#endif
  } catch (const Error&) {
    // The documented outcome for bad input.
  }
  return 0;
}
