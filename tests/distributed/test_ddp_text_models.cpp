// Invariants 1 and 2 under mpiexec for token and sequence models, on every all-reduce path (as in
// test_ddp_training.cpp): an embedding, recurrent layers, padding masks and transformer encoders.

#include <gtest/gtest.h>

#include "ddp_training_fixture.h"

namespace ddp {
namespace {

using namespace dist_test;

class DdpTextModels : public DdpTraining {};

// An embedding of token ids, averaged over the tokens: N ranks (the partial last batch split over
// them, ranks without rows adding nothing to the table's gradient) train what one rank does, with
// the optimizer state sharded (ZeRO-1) where the path has it.
TEST_P(DdpTextModels, EmbeddingMatchesSingleProcess) {
  MpiCommunicator comm;
  const Config config = config_with(
      {"data.train={type: synthetic, samples: 98, features: 12, vocabulary: 40, classes: 4}",
       "model.input=[12]", "training.tail=partial", "training.check_replicas_every=1",
       "model.layers=[{type: embedding, input_dim: 40, output_dim: 8},"
       " {type: global_average_pooling1d}, {type: dense, units: 8, activation: relu},"
       " {type: dense, units: 4, activation: softmax}]"});
  expect_trains_as_one_process(config, comm, 12);  // 3 epochs
}

// Recurrent models: two stacked LSTMs, then two GRUs, then two SimpleRNNs (the first returning
// every step, both ways; the second with dropout and recurrent dropout, whose masks follow the
// samples' positions; the second SimpleRNN's GELU keeps each step's sum) over embedded tokens;
// the GRUs and SimpleRNNs also with id 0 as padding (mask_zero, Note [padding masks]).
TEST_P(DdpTextModels, RecurrentMatchesSingleProcess) {
  MpiCommunicator comm;
  for (const auto& [type, second, mask] :
       {std::tuple<std::string, std::string, std::string>{"lstm", "", "false"},
        {"gru", "", "false"},
        {"gru", "", "true"},
        {"simple_rnn", ", activation: gelu", "false"},
        {"simple_rnn", "", "true"}}) {
    // Where masked, id 0 is padding: one step in 40, anywhere in a text.
    const Config config = config_with(
        {"data.train={type: synthetic, samples: 98, features: 10, vocabulary: 40, classes: 4}",
         "model.input=[10]", "training.tail=partial", "training.check_replicas_every=1",
         "model.layers=[{type: embedding, input_dim: 40, output_dim: 6, mask_zero: " + mask +
             "}, {type: " + type + ", units: 8, return_sequences: true, bidirectional: true}, " +
             "{type: " + type + ", units: 5, dropout: 0.2, recurrent_dropout: 0.3" + second +
             "}, {type: dense, units: 4, activation: softmax}]"});
    expect_trains_as_one_process(config, comm, 12);  // 3 epochs
  }
}

// Texts of 3 to 10 tokens padded with id 0 (Note [padding masks]): an embedding with mask_zero
// under spatial and plain dropout, a dense layer at each step (its GELU a layer of its own) and
// GlobalAveragePooling1D, each text's average over its real tokens; and read two ids a step, as
// sequences of 5 steps of 2 features whose last steps are zeros, a masking layer under a GRU
// returning every step and a SimpleRNN, each skipping the padding steps.
TEST_P(DdpTextModels, PaddingMasksMatchSingleProcess) {
  MpiCommunicator comm;
  for (const auto& [input, layers] :
       {std::pair<std::string, std::string>{
            "[10]",
            "{type: embedding, input_dim: 40, output_dim: 6, mask_zero: true}, "
            "{type: spatial_dropout1d, rate: 0.3}, {type: dropout, rate: 0.2}, "
            "{type: dense, units: 5, activation: gelu}, {type: global_average_pooling1d}"},
        {"[5, 2]",
         "{type: rescaling, scale: 0.05}, {type: masking}, "
         "{type: gru, units: 6, return_sequences: true}, {type: simple_rnn, units: 5}"}}) {
    const Config config = config_with(
        {"data.train={type: synthetic, samples: 98, features: 10, vocabulary: 40, classes: 4, "
         "min_length: 3}",
         "model.input=" + input, "training.tail=partial", "training.check_replicas_every=1",
         "model.layers=[" + layers + ", {type: dense, units: 4, activation: softmax}]"});
    expect_trains_as_one_process(config, comm, 12);  // 3 epochs
  }
}

// Transformer encoders over embedded tokens (Note [self-attention]): post-normalization with
// dropout (on the attention probabilities and both branches, by the samples' positions) and a GELU
// feed-forward, then learned positions and pre-normalization over texts padded with id 0 (the
// mask on the keys).
TEST_P(DdpTextModels, TransformerEncoderMatchesSingleProcess) {
  MpiCommunicator comm;
  for (const auto& [block, mask] :
       {std::pair<std::string, std::string>{"dropout: 0.2, activation: gelu", "false"},
        {"normalize_first: true", "true"}}) {
    // The second adds learned positions, whose table sums each position's rows over the batch.
    const std::string positions = mask == "true" ? "{type: position_embedding}, " : "";
    const Config config = config_with(
        {"data.train={type: synthetic, samples: 98, features: 10, vocabulary: 40, classes: 4, "
         "min_length: 3}",
         "model.input=[10]", "training.tail=partial", "training.check_replicas_every=1",
         "model.layers=[{type: embedding, input_dim: 40, output_dim: 8, mask_zero: " + mask +
             "}, " + positions +
             "{type: transformer_encoder, num_heads: 2, intermediate_dim: 12, " + block +
             "}, {type: global_average_pooling1d}, {type: dense, units: 4, activation: softmax}]"});
    expect_trains_as_one_process(config, comm, 12);  // 3 epochs
  }
}

// A tag per token (Note [targets per position]): a bidirectional GRU returning every step, a
// causal transformer encoder with dropout, and a softmax layer at each step, the loss the mean
// over every token of the global batch (a partial last batch split unevenly), with sample weights;
// then the mean over the tokens the loss counts, whose number differs between the ranks (Note
// [masked positions]): the real tokens of texts padded with id 0, and the tokens whose tags
// loss.ignore_class does not leave out; and padded texts in pairs of accumulated micro-batches.
TEST_P(DdpTextModels, TagsPerTokenMatchSingleProcess) {
  MpiCommunicator comm;
  for (const std::string variant : {"every token", "padded", "ignored", "padded, accumulated"}) {
    SCOPED_TRACE(variant);
    const bool accumulated = variant == "padded, accumulated";
    const bool padded = variant == "padded" || accumulated, ignored = variant == "ignored";
    const Config config = config_with(
        {"data.train={type: synthetic, samples: 98, features: 10, vocabulary: 40, classes: 4, "
         "per_step: true" +
             std::string(padded ? ", min_length: 2}" : "}"),
         "model.input=[10]", "training.check_replicas_every=1",
         accumulated ? "training.accumulation_steps=2" : "training.tail=partial",
         std::string("loss={type: sparse_categorical_crossentropy") +
             (ignored ? ", ignore_class: -1}" : "}"),
         "model.layers=[{type: embedding, input_dim: 40, output_dim: 8, mask_zero: " +
             std::string(padded ? "true" : "false") +
             "}, {type: gru, units: 4, return_sequences: true, bidirectional: true}, "
             "{type: transformer_encoder, num_heads: 2, intermediate_dim: 12, dropout: 0.1, "
             "causal: true}, {type: dense, units: 4, activation: softmax}]"});
    expect_trains_as_one_process(config, comm, 12, [ignored](Dataset& data) {
      data.sample_weights.resize(static_cast<size_t>(data.size()));
      for (size_t i = 0; i < data.sample_weights.size(); ++i)
        data.sample_weights[i] = 0.5f + static_cast<float>(i % 4) / 4;
      if (ignored)  // a tag in three left out, more of them in some texts than in others
        for (size_t i = 0; i < data.labels.size(); i += 1 + i % 5) data.labels[i] = -1;
    });  // 3 epochs
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, DdpTextModels, ::testing::Values("shm", "mpi", "hierarchical"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ddp
