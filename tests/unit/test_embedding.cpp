// Embedding, Conv1D, MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D and
// GlobalMaxPooling1D: rows gathered and their gradients scattered as worked out by hand and by
// finite differences, the same bits on any number of threads, and token ids checked in the data;
// mask_zero's padding mask, GlobalAveragePooling1D's average over the real steps, and where the
// model builder lets the mask go.

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/dataset.h"
#include "finite_differences.h"
#include "nn/conv2d.h"
#include "nn/embedding.h"
#include "nn/model_builder.h"
#include "nn/pooling2d.h"
#include "nn/sequential.h"

namespace ddp {
namespace {

TEST(Embedding, GathersRowsAndAddsRepeatedIdsGradients) {
  auto backend = make_cpu_backend();
  Embedding layer(Shape{3}, 4, 2);
  EXPECT_EQ(layer.output_shape(), (Shape{3, 2}));
  std::vector<float> table = {0, 1, 10, 11, 20, 21, 30, 31}, grad(8, -7.0f);
  float* params[] = {table.data()};
  float* grads[] = {grad.data()};
  layer.bind(params, grads);
  const std::vector<float> ids = {2, 0, 2};
  std::vector<float> y(6);
  layer.forward(*backend, ids.data(), y.data(), 1);
  EXPECT_EQ(y, (std::vector<float>{20, 21, 0, 1, 20, 21}));
  std::vector<float> dy = {1, 2, 3, 4, 5, 6};
  layer.backward(*backend, ids.data(), y.data(), dy.data(), nullptr, 1, false);
  // Row 2 holds the first and third tokens' gradients; rows 1 and 3 no token's.
  EXPECT_EQ(grad, (std::vector<float>{3, 4, 0, 0, 6, 8, 0, 0}));
  layer.backward(*backend, ids.data(), y.data(), dy.data(), nullptr, 1, true);
  EXPECT_EQ(grad, (std::vector<float>{6, 8, 0, 0, 12, 16, 0, 0}));
}

// The table's gradient of L = sum(y * r), and GlobalAveragePooling1D's input gradient, against
// central differences; with mask_zero, the average over each sample's real steps.
TEST(Embedding, GradientsMatchFiniteDifferences) {
  auto backend = make_cpu_backend();
  const int64_t batch = 2, steps = 5, vocabulary = 6, dim = 3;
  for (const bool mask_zero : {false, true}) {
    SCOPED_TRACE(mask_zero ? "mask_zero" : "no mask");
    Embedding embedding(Shape{steps}, vocabulary, dim, mask_zero);
    std::vector<float> table = random_vector(vocabulary * dim, 1), grad(table.size());
    float* params[] = {table.data()};
    float* grads[] = {grad.data()};
    embedding.bind(params, grads);
    const std::vector<float> ids = {1, 4, 0, 0, 5, 2, 2, 0, 3, 1};
    Pooling2D pooling(Pooling2D::Kind::kGlobalAverage1D,
                      Window2d::make(1, steps, dim, 1, steps, 1, 1, false));
    EXPECT_EQ(pooling.type_name(), "GlobalAveragePooling1D");
    EXPECT_EQ(pooling.output_shape(), (Shape{dim}));
    const std::vector<float> r = random_vector(batch * dim, 2);
    std::vector<float> embedded(batch * steps * dim), pooled(batch * dim);
    const auto objective = [&] {
      embedding.forward(*backend, ids.data(), embedded.data(), batch);
      pooling.set_input_mask(embedding.output_mask());
      pooling.forward(*backend, embedded.data(), pooled.data(), batch);
      return weighted_sum(pooled, r);
    };
    objective();
    std::vector<float> dy = r, dembedded(embedded.size());
    pooling.backward(*backend, embedded.data(), pooled.data(), dy.data(), dembedded.data(), batch,
                     false);
    const std::vector<float> dpooling_input = dembedded;
    embedding.backward(*backend, ids.data(), embedded.data(), dembedded.data(), nullptr, batch,
                       false);
    expect_matches_finite_differences(objective, table, grad, "table");
    const auto pooling_objective = [&] {
      pooling.forward(*backend, embedded.data(), pooled.data(), batch);
      return weighted_sum(pooled, r);
    };
    expect_matches_finite_differences(pooling_objective, embedded, dpooling_input, "pooling input");
    // Id 0's row: in every average without the mask, in none with it.
    EXPECT_EQ(grad[0] == 0.0f, mask_zero);
  }
}

// Note [padding masks]: with a mask, GlobalAveragePooling1D averages each sample's real steps
// (worked out by hand), 0 for a sample with none; its gradient goes to those steps alone.
TEST(GlobalAveragePooling1D, AveragesEachSamplesRealSteps) {
  auto backend = make_cpu_backend();
  Pooling2D pooling(Pooling2D::Kind::kGlobalAverage1D, Window2d::make(1, 3, 2, 1, 3, 1, 1, false));
  const std::vector<float> x = {1, 2, 30, 40, 5, 6, 7, 8, 9, 10, 11, 12};  // (2, steps 3, 2)
  const std::vector<float> mask = {1, 0, 1, 0, 0, 0};
  std::vector<float> y(4), dy = {10, 20, 30, 40}, dx(12, -1.0f);
  pooling.set_input_mask(mask.data());
  pooling.forward(*backend, x.data(), y.data(), 2);
  EXPECT_EQ(y, (std::vector<float>{3, 4, 0, 0}));
  pooling.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), 2, false);
  EXPECT_EQ(dx, (std::vector<float>{5, 10, 0, 0, 5, 10, 0, 0, 0, 0, 0, 0}));
  pooling.set_input_mask(nullptr);
  pooling.forward(*backend, x.data(), y.data(), 2);
  EXPECT_EQ(y, (std::vector<float>{12, 16, 9, 10}));
}

// The same bits on a team of threads, each share of samples reading its own rows of the mask.
TEST(GlobalAveragePooling1D, MaskedBitsDoNotDependOnTheThreads) {
  const int64_t batch = 512, steps = 40, dim = 16;
  const Window2d w = Window2d::make(1, steps, dim, 1, steps, 1, 1, false);
  const std::vector<float> x = random_vector(batch * steps * dim, 5);
  const std::vector<float> dy = random_vector(batch * dim, 6);
  std::vector<float> mask(batch * steps);
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = (i * 7 + i / steps) % 5 == 0 ? 0.0f : 1.0f;
  const auto run = [&](int threads) {
    auto backend = make_cpu_backend(true, threads);
    std::vector<float> y(batch * dim), dx(x.size());
    backend->avg_pool_forward(x.data(), mask.data(), y.data(), batch, w, /*mean=*/true);
    backend->avg_pool_backward(mask.data(), dy.data(), dx.data(), batch, w, /*mean=*/true);
    y.insert(y.end(), dx.begin(), dx.end());
    return y;
  };
  EXPECT_EQ(run(1), run(2));
}

// A model reads a text padded anywhere as the same bag of tokens: an embedding with mask_zero
// and GlobalAveragePooling1D give [3, 5, 0, 0], [0, 3, 0, 5] and [5, 0, 0, 3] one output.
TEST(GlobalAveragePooling1D, PaddingAnywhereLeavesAModelsOutput) {
  auto backend = make_cpu_backend();
  const auto spec = [](const std::string& type, int64_t units, const std::string& activation) {
    LayerSpec s;
    s.type = type;
    s.units = units;
    s.vocabulary = 8;
    s.mask_zero = true;
    s.activation = activation;
    return s;
  };
  const auto model =
      build_sequential(*backend, Shape{4},
                       {spec("embedding", 3, "linear"),
                        spec("global_average_pooling1d", 0, "linear"), spec("dense", 2, "tanh")});
  model->init_params(11);
  const std::vector<float> ids = {3, 5, 0, 0, 0, 3, 0, 5, 5, 0, 0, 3, 3, 5, 3, 5};
  const float* out = model->predict(ids.data(), 4);
  const std::vector<float> y(out, out + 8);
  EXPECT_FLOAT_EQ(y[0], y[2]);
  EXPECT_FLOAT_EQ(y[1], y[3]);
  EXPECT_FLOAT_EQ(y[0], y[4]);
  EXPECT_FLOAT_EQ(y[1], y[5]);
  // [3, 5, 3, 5] averages the same rows without padding.
  EXPECT_FLOAT_EQ(y[0], y[6]);
  EXPECT_FLOAT_EQ(y[1], y[7]);
}

// GlobalMaxPooling1D: each channel's maximum over the steps, its gradient routed there.
TEST(GlobalMaxPooling1D, TakesEachChannelsMaximumOverTheSteps) {
  auto backend = make_cpu_backend();
  Pooling2D pooling(Pooling2D::Kind::kGlobalMax1D, Window2d::make(1, 3, 2, 1, 3, 1, 1, false));
  EXPECT_EQ(pooling.type_name(), "GlobalMaxPooling1D");
  EXPECT_EQ(pooling.output_shape(), (Shape{2}));
  const std::vector<float> x = {1, 9, 7, -2, 3, 4};  // (steps 3, channels 2)
  std::vector<float> y(2), dy = {10, 20}, dx(6);
  pooling.forward(*backend, x.data(), y.data(), 1);
  EXPECT_EQ(y, (std::vector<float>{7, 9}));
  pooling.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), 1, false);
  EXPECT_EQ(dx, (std::vector<float>{0, 20, 10, 0, 0, 0}));
}

// MaxPooling1D and AveragePooling1D over the steps as worked out by hand, at stride 2 with
// Keras' same padding: 5 steps give 3 windows, the last one step alone, which the average divides
// by 1 (padding takes no part); gradients to each window's maximum, or shared over its steps.
TEST(Pooling1D, WindowsOverTheSteps) {
  auto backend = make_cpu_backend();
  const Window2d w = Window2d::make(1, 5, 2, 1, 2, 1, 2, true);
  Pooling2D max(Pooling2D::Kind::kMax1D, w), average(Pooling2D::Kind::kAverage1D, w);
  EXPECT_EQ(max.type_name(), "MaxPooling1D");
  EXPECT_EQ(average.type_name(), "AveragePooling1D");
  EXPECT_EQ(max.output_shape(), (Shape{3, 2}));
  const std::vector<float> x = {1, 9, 7, -2, 3, 4, 5, 6, 8, -1};  // (steps 5, channels 2)
  std::vector<float> y(6), dy = {1, 2, 3, 4, 5, 6}, dx(10);
  max.forward(*backend, x.data(), y.data(), 1);
  EXPECT_EQ(y, (std::vector<float>{7, 9, 5, 6, 8, -1}));
  max.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), 1, false);
  EXPECT_EQ(dx, (std::vector<float>{0, 2, 1, 0, 0, 0, 3, 4, 5, 6}));
  average.forward(*backend, x.data(), y.data(), 1);
  EXPECT_EQ(y, (std::vector<float>{4, 3.5f, 4, 5, 8, -1}));
  average.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), 1, false);
  EXPECT_EQ(dx, (std::vector<float>{0.5f, 1, 0.5f, 1, 1.5f, 2, 1.5f, 2, 5, 6}));
}

// Conv1D is the convolution over an image of one row: the same outputs and gradients, bit for bit,
// through each backend path (channels <= 4: the direct kernels; more: oneDNN or im2col + GEMM),
// with its weight as (filters, kernel, channels) and its output as (steps, filters).
TEST(Conv1D, IsTheConvolutionOverAnImageOfOneRow) {
  auto backend = make_cpu_backend();
  for (const int64_t channels : {3, 12}) {
    const int64_t steps = 11, filters = 5, kernel = 3, batch = 2;
    const Window2d w = Window2d::make(1, steps, channels, 1, kernel, 1, 2, true);
    Conv2D conv1d(w, filters, Activation::kRelu, true, /*one_row=*/true);
    Conv2D conv2d(w, filters, Activation::kRelu, true);
    EXPECT_EQ(conv1d.type_name(), "Conv1D");
    EXPECT_EQ(conv1d.output_shape(), (Shape{6, filters}));
    EXPECT_EQ(conv1d.param_specs()[0].shape, (Shape{filters, kernel, channels}));
    std::vector<float> weight = random_vector(filters * kernel * channels, 5),
                       bias = random_vector(filters, 6);
    const std::vector<float> x = random_vector(batch * steps * channels, 7),
                             r = random_vector(batch * 6 * filters, 8);
    std::vector<std::vector<float>> outputs;
    for (Conv2D* layer : {&conv1d, &conv2d}) {
      std::vector<float> dw(weight.size()), db(bias.size());
      bind_weight_and_bias(*layer, weight, bias, dw, db, true);
      std::vector<float> y(r.size()), dy = r, dx(x.size());
      layer->forward(*backend, x.data(), y.data(), batch);
      layer->backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
      for (const std::vector<float>* v : {&y, &dx, &dw, &db}) outputs.push_back(*v);
    }
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(outputs[i], outputs[i + 4]) << channels << " " << i;
  }
}

// Note [threads per rank]: rows and the gradient's columns shared out, each computed as on one
// thread.
TEST(Embedding, BitsDoNotDependOnTheThreads) {
  const int64_t count = 4096, vocabulary = 50, dim = 32;
  std::vector<float> ids(count);
  for (int64_t i = 0; i < count; ++i) ids[i] = static_cast<float>((i * 7) % vocabulary);
  const std::vector<float> table = random_vector(vocabulary * dim, 3);
  const std::vector<float> dy = random_vector(count * dim, 4);
  const auto run = [&](int threads) {
    auto backend = make_cpu_backend(true, threads);
    std::vector<float> y(count * dim), grad(vocabulary * dim, 1.0f);
    backend->embedding_forward(ids.data(), table.data(), y.data(), count, dim);
    backend->embedding_backward(ids.data(), dy.data(), grad.data(), count, vocabulary, dim, true);
    y.insert(y.end(), grad.begin(), grad.end());
    return y;
  };
  EXPECT_EQ(run(1), run(2));
}

TEST(Dataset, TokenIdsAreWholeNumbersBelowTheVocabulary) {
  Dataset data;
  data.origin = "data.train (t.csv)";
  data.sample_shape = Shape{2};
  data.labels = {0, 1};
  const auto refused = [&](float value) -> std::string {
    data.features = {1, 2, 3, value};
    try {
      data.check_token_ids(4);
    } catch (const DataError& e) {
      return e.what();
    }
    return "accepted";
  };
  EXPECT_EQ(refused(0), "accepted");
  EXPECT_EQ(refused(3.5f),
            "data.train (t.csv): sample 1, value 1 is 3.5, not a token id in [0, 4) for the "
            "embedding's input_dim 4");
  EXPECT_NE(refused(4).find("is 4, not a token id"), std::string::npos);
  EXPECT_NE(refused(-1).find("is -1, not"), std::string::npos);
  EXPECT_NE(refused(std::numeric_limits<float>::quiet_NaN()).find("is nan, not"),
            std::string::npos);
}

// Note [padding masks]: a mask_zero embedding's output carries 0 where the id is 0, 1 elsewhere
// (and id 0 still has its row); without mask_zero, no mask.
TEST(Embedding, MaskZeroMarksPadding) {
  auto backend = make_cpu_backend();
  const std::vector<float> ids = {3, 0, 1, 0, 0, 2};
  std::vector<float> table = {0.5f, -1, 2, 4, 1, 1, 7, 8}, grad(table.size());
  for (const bool mask_zero : {false, true}) {
    Embedding layer(Shape{3}, 4, 2, mask_zero);
    std::vector<float*> params = {table.data()}, grads = {grad.data()};
    layer.bind(params, grads);
    std::vector<float> y(12);
    layer.forward(*backend, ids.data(), y.data(), 2);
    EXPECT_EQ(y[2], 0.5f);  // id 0's row
    if (!mask_zero) {
      EXPECT_EQ(layer.output_mask(), nullptr);
      continue;
    }
    ASSERT_NE(layer.output_mask(), nullptr);
    const std::vector<float> mask(layer.output_mask(), layer.output_mask() + 6);
    EXPECT_EQ(mask, (std::vector<float>{1, 0, 1, 0, 0, 1}));
  }
}

// The mask reaches recurrent layers and GlobalAveragePooling1D through dropout and recurrent layers
// that return every step; any other layer it would reach, or the model's output, is refused naming
// the layer and the embedding.
TEST(Embedding, MaskZeroGoesOnlyWhereItIsTaken) {
  auto backend = make_cpu_backend();
  const auto spec = [](const std::string& type, int64_t units, bool sequences, int index) {
    LayerSpec s;
    s.type = type;
    s.units = units;
    s.vocabulary = 20;
    s.mask_zero = type == "embedding";
    s.return_sequences = sequences;
    s.rate = type == "dropout" ? 0.2f : 0.0f;
    s.activation = type == "dense" ? "relu" : type == "simple_rnn" ? "tanh" : "linear";
    s.path = "c.yaml: model.layers." + std::to_string(index);
    return s;
  };
  const auto model = build_sequential(
      *backend, Shape{6},
      {spec("embedding", 4, false, 0), spec("dropout", 0, false, 1), spec("gru", 3, true, 2),
       spec("simple_rnn", 3, false, 3), spec("dense", 2, false, 4)});
  EXPECT_EQ(model->layers().size(), 5u);
  const auto refusal = [&](const std::vector<LayerSpec>& specs) {
    try {
      const std::string origin = build_sequential(*backend, Shape{6}, specs)->output_mask_origin();
      // A mask that reaches the output is the loss's to take or refuse (Note [masked positions]).
      return "accepted" + (origin.empty() ? "" : ", its mask at the output from " + origin);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(refusal({spec("embedding", 4, false, 0), spec("lstm", 3, true, 1),
                     spec("global_average_pooling1d", 0, false, 2), spec("dense", 2, false, 3)}),
            "accepted");
  EXPECT_EQ(
      refusal({spec("embedding", 4, false, 0), spec("lstm", 3, true, 1),
               spec("global_max_pooling1d", 0, false, 2), spec("dense", 2, false, 3)}),
      "c.yaml: model.layers.2: global_max_pooling1d after c.yaml: model.layers.0 "
      "(mask_zero): the padding mask reaches it, and only recurrent layers, "
      "global_average_pooling1d, transformer_encoder, position_embedding and layers of one "
      "step at a time "
      "(dense, dropout, activations, layer_normalization, rms_normalization) take masks here");
  EXPECT_EQ(refusal({spec("embedding", 4, false, 0), spec("lstm", 3, true, 1)}),
            "accepted, its mask at the output from c.yaml: model.layers.0.mask_zero");
}

}  // namespace
}  // namespace ddp
