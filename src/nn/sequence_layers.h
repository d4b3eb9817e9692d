#pragma once

#include <cstdint>
#include <memory>

#include "nn/model_builder.h"

namespace ddp {

// The builder's layers of token ids and sequences (embedding, recurrent layers, masking,
// position_embedding, transformer_encoder) from their spec and input shape: ConfigError naming the
// layer where it cannot follow its input or takes the model's parameters (counted into
// `parameters`) past `budget`; null for a spec of another type. `first`: no layer before it.
std::unique_ptr<Layer> sequence_layer(const LayerSpec& spec, const Shape& shape, bool first,
                                      Activation act, uint64_t budget, uint64_t& parameters);

}  // namespace ddp
