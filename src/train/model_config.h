#pragma once

#include "train/config.h"
#include "train/config_reader.h"

namespace ddp {

// The config's `model` section: the input shape, if given, and the layers (LayerSpec), each
// checked for its type's keys (ConfigError naming the key).
void parse_model(ConfigNode& root, Config& config);

}  // namespace ddp
