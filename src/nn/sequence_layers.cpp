#include "nn/sequence_layers.h"

#include "core/error.h"
#include "nn/embedding.h"
#include "nn/gru.h"
#include "nn/lstm.h"
#include "nn/masking.h"
#include "nn/position_embedding.h"
#include "nn/simple_rnn.h"
#include "nn/transformer_encoder.h"

namespace ddp {

std::unique_ptr<Layer> sequence_layer(const LayerSpec& spec, const Shape& shape, bool first,
                                      Activation act, uint64_t budget, uint64_t& parameters) {
  if (spec.type == "embedding") {
    if (!first)
      throw ConfigError(spec.path + ": embedding reads token ids, the model's input: it must " +
                        "be the first layer");
    const auto size = static_cast<uint64_t>(spec.vocabulary) * static_cast<uint64_t>(spec.units);
    if (size > budget)
      throw ConfigError(spec.path + ": a table of " + std::to_string(spec.vocabulary) + " x " +
                        std::to_string(spec.units) + " takes the model past " +
                        std::to_string(budget) + " parameters, what this process's memory can " +
                        "train");
    parameters += size;
    return std::make_unique<Embedding>(shape, spec.vocabulary, spec.units, spec.mask_zero);
  }
  if (is_recurrent(spec.type)) {
    if (shape.rank() != 2)
      throw ConfigError(spec.path + ": " + spec.type + " needs an input of (steps, features), " +
                        "an embedding's output or a sequence, but gets " + shape.str());
    // Per direction: 4 (LSTM), 3 (GRU) or 1 (SimpleRNN) gates of weights, one bias each (the
    // GRU's two).
    const int gates = spec.type == "lstm" ? 4 : spec.type == "gru" ? 3 : 1;
    const auto biases = spec.use_bias ? (spec.type == "gru" ? 2 : 1) : 0;
    const auto size = static_cast<uint64_t>((spec.bidirectional ? 2 : 1) * gates * spec.units) *
                      static_cast<uint64_t>(shape[1] + spec.units + biases);
    if (spec.units <= 0 || size > budget - parameters)
      throw ConfigError(spec.path + ".units: " + std::to_string(spec.units) + " units of " +
                        std::to_string(shape[1]) + " features take the model past " +
                        std::to_string(budget) + " parameters, what this process's memory " +
                        "can train");
    parameters += size;
    if (spec.type == "lstm")
      return std::make_unique<Lstm>(shape[0], shape[1], spec.units, spec.return_sequences,
                                    spec.use_bias, spec.bidirectional, spec.rate,
                                    spec.recurrent_rate);
    else if (spec.type == "gru")
      return std::make_unique<Gru>(shape[0], shape[1], spec.units, spec.return_sequences,
                                   spec.use_bias, spec.bidirectional, spec.rate,
                                   spec.recurrent_rate);
    else
      return std::make_unique<SimpleRnn>(shape[0], shape[1], spec.units, spec.return_sequences,
                                         spec.use_bias, spec.bidirectional, spec.rate,
                                         spec.recurrent_rate, act);
  }
  if (spec.type == "position_embedding") {
    if (shape.rank() != 2)
      throw ConfigError(spec.path + ": position_embedding needs an input of (steps, " +
                        "features), an embedding's output or a sequence, but gets " + shape.str());
    if (static_cast<uint64_t>(shape.numel()) > budget - parameters)
      throw ConfigError(spec.path + ": a table of " + shape.str() + " takes the model past " +
                        std::to_string(budget) + " parameters, what this process's memory " +
                        "can train");
    parameters += static_cast<uint64_t>(shape.numel());
    return std::make_unique<PositionEmbedding>(shape[0], shape[1]);
  }
  if (spec.type == "transformer_encoder") {
    if (shape.rank() != 2)
      throw ConfigError(spec.path + ": transformer_encoder needs an input of (steps, " +
                        "features), an embedding's output or a sequence, but gets " + shape.str());
    const int64_t dim = shape[1];
    if (dim % spec.heads != 0)
      throw ConfigError(spec.path + ".num_heads: " + std::to_string(spec.heads) +
                        " heads do not divide the input's " + std::to_string(dim) +
                        " features (each head takes features / num_heads of them)");
    // in_proj (3 dim x dim + 3 dim), out_proj, linear1 and linear2, two normalizations
    const auto d = static_cast<uint64_t>(dim), f = static_cast<uint64_t>(spec.intermediate);
    if (f > budget / (2 * d + 1) || 4 * d * d + 2 * d * f > budget - parameters)
      throw ConfigError(spec.path + ".intermediate_dim: " + std::to_string(spec.intermediate) +
                        " over " + std::to_string(dim) + " features take the model past " +
                        std::to_string(budget) + " parameters, what this process's memory " +
                        "can train");
    parameters += 4 * d * d + 2 * d * f + 9 * d + f;
    return std::make_unique<TransformerEncoder>(shape[0], dim, spec.heads, spec.intermediate, act,
                                                spec.rate, spec.epsilon, spec.normalize_first,
                                                spec.causal);
  }
  if (spec.type == "masking") {
    if (shape.rank() != 2)
      throw ConfigError(spec.path + ": masking needs an input of (steps, features), a " +
                        "sequence, but gets " + shape.str());
    return std::make_unique<Masking>(shape, spec.mask_value);
  }
  return nullptr;
}

}  // namespace ddp
