// Residual blocks (Note [residual blocks]): the block's output is its layers' plus its shortcut's
// (or its input's), bit for bit; backward gives each branch the output's gradient and adds their
// input gradients; finite differences through blocks with batch normalization; the parameters'
// names; a frozen block; the config's refusals.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "api/keras.h"
#include "api/keras_model_config.h"
#include "core/error.h"
#include "finite_differences.h"
#include "keras_api_fixtures.h"
#include "model_from_yaml.h"

namespace ddp {
namespace {

// A model's output, input gradient and parameter gradients for x and the output gradient dy,
// its layers run one by one.
struct LayerRun {
  std::vector<float> y, dx, grads;
};

LayerRun run_layers(ComputeBackend& backend, Sequential& model, const std::vector<float>& params,
                    const std::vector<float>& x, const std::vector<float>& dy, int64_t batch) {
  std::ranges::copy(params, model.params().begin());
  DeviceBuffer grads(backend, model.param_count());
  model.bind_grads(grads.span());
  const auto& layers = model.layers();
  std::vector<std::vector<float>> out(layers.size() + 1);
  out[0] = x;
  for (size_t i = 0; i < layers.size(); ++i) {
    out[i + 1].resize(static_cast<size_t>(batch * layers[i]->output_shape().numel()));
    layers[i]->forward(backend, out[i].data(), out[i + 1].data(), batch);
  }
  std::vector<float> d_out = dy;
  for (size_t i = layers.size(); i-- > 0;) {
    std::vector<float> d_in(out[i].size());
    layers[i]->backward(backend, out[i].data(), out[i + 1].data(), d_out.data(), d_in.data(), batch,
                        false);
    d_out = std::move(d_in);
  }
  return {out.back(), d_out, {grads.data(), grads.data() + grads.size()}};
}

std::vector<float> sum(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = a[i] + b[i];
  return out;
}

// A strided block with a projection shortcut against its two branches built as models of their
// own from the same parameters (the block's first, then the shortcut's): the output is their sum,
// the input gradient the sum of theirs, the parameter gradients theirs, all bit for bit.
TEST(Residual, TheSumOfItsBranchesBitForBit) {
  auto backend = make_cpu_backend();
  const Shape input{6, 6, 3};
  const std::string block =
      "{type: conv2d, filters: 4, kernel_size: 3, strides: 2, padding: same, activation: relu}, "
      "{type: conv2d, filters: 5, kernel_size: 3, padding: same}";
  const std::string shortcut = "{type: conv2d, filters: 5, kernel_size: 1, strides: 2}";
  auto whole = build(*backend, input,
                     "{type: residual, layers: [" + block + "], shortcut: [" + shortcut + "]}");
  auto branch = build(*backend, input, block);
  auto side = build(*backend, input, shortcut);
  ASSERT_EQ(whole->param_count(), branch->param_count() + side->param_count());
  EXPECT_EQ(whole->layers()[0]->output_shape(), (Shape{3, 3, 5}));
  const int64_t batch = 3;
  const std::vector<float> params = random_vector(whole->param_count(), 1);
  const std::vector<float> x = random_vector(static_cast<size_t>(batch * input.numel()), 2);
  const std::vector<float> dy = random_vector(static_cast<size_t>(batch * 3 * 3 * 5), 3);
  const LayerRun r = run_layers(*backend, *whole, params, x, dy, batch);
  const auto split = params.begin() + static_cast<std::ptrdiff_t>(branch->param_count());
  const LayerRun b = run_layers(*backend, *branch, {params.begin(), split}, x, dy, batch);
  const LayerRun s = run_layers(*backend, *side, {split, params.end()}, x, dy, batch);
  EXPECT_EQ(r.y, sum(b.y, s.y));
  EXPECT_EQ(r.dx, sum(b.dx, s.dx));
  std::vector<float> grads = b.grads;
  grads.insert(grads.end(), s.grads.begin(), s.grads.end());
  EXPECT_EQ(r.grads, grads);

  // The identity shortcut: the block's output plus its input, and dy added to its input gradient.
  auto identity = build(*backend, Shape{4, 3},
                        "{type: residual, layers: [{type: dense, units: 5, activation: tanh}, "
                        "{type: dense, units: 3}]}");
  auto alone = build(*backend, Shape{4, 3},
                     "{type: dense, units: 5, activation: tanh}, {type: dense, units: 3}");
  const std::vector<float> p = random_vector(identity->param_count(), 4);
  const std::vector<float> xs = random_vector(2 * 12, 5), dys = random_vector(2 * 12, 6);
  const LayerRun i = run_layers(*backend, *identity, p, xs, dys, 2);
  const LayerRun a = run_layers(*backend, *alone, p, xs, dys, 2);
  EXPECT_EQ(i.y, sum(a.y, xs));
  EXPECT_EQ(i.dx, sum(a.dx, dys));
  EXPECT_EQ(i.grads, a.grads);
}

// Finite differences through two blocks in training (batch statistics): the first block is the
// model's first layer, so it computes no input gradient; the second passes one on, to a projection
// shortcut with its own batch normalization.
TEST(Residual, GradientsMatchFiniteDifferences) {
  auto backend = make_cpu_backend();
  auto model = build(*backend, Shape{4, 4, 2},
                     "{type: residual, layers: [{type: conv2d, filters: 2, kernel_size: 3, "
                     "padding: same, activation: tanh}, {type: batch_normalization}]}, "
                     "{type: tanh}, "
                     "{type: residual, layers: [{type: conv2d, filters: 3, kernel_size: 3, "
                     "strides: 2, padding: same, use_bias: false}, {type: batch_normalization}, "
                     "{type: gelu}], shortcut: [{type: conv2d, filters: 3, kernel_size: 1, "
                     "strides: 2, use_bias: false}, {type: batch_normalization}]}, "
                     "{type: flatten}, {type: dense, units: 3, activation: softmax}");
  model->set_output_logits(OutputFunction::kSoftmax);
  model->init_params(7);
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  model->set_pass({true, 0, 0, {}});
  expect_model_gradient_matches(*backend, *model, random_vector(3 * 32, 9), {2, 0, 1});

  // The input gradient of a block with an identity shortcut.
  auto alone = build(*backend, Shape{3, 4},
                     "{type: residual, layers: [{type: conv1d, filters: 4, kernel_size: 3, "
                     "padding: same, activation: tanh}, {type: layer_normalization}]}");
  alone->init_params(3);
  DeviceBuffer alone_grads(*backend, alone->param_count());
  alone->bind_grads(alone_grads.span());
  std::vector<float> x = random_vector(2 * 12, 11), y(2 * 12);
  expect_input_gradient_matches(*backend, *alone->layers()[0], x, y, 2, 12);
}

// accumulate adds each backward's parameter gradients to the last ones, in both branches.
TEST(Residual, AccumulatedGradients) {
  auto backend = make_cpu_backend();
  auto model = build(*backend, Shape{5},
                     "{type: residual, layers: [{type: dense, units: 3, activation: relu}], "
                     "shortcut: [{type: dense, units: 3, use_bias: false}]}");
  const std::vector<float> params = random_vector(model->param_count(), 1);
  const std::vector<float> x = random_vector(4 * 5, 2), dy = random_vector(4 * 3, 3);
  const LayerRun once = run_layers(*backend, *model, params, x, dy, 4);
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  Layer& layer = *model->layers()[0];
  std::vector<float> y(dy.size());
  for (bool accumulate : {false, true}) {
    std::vector<float> d = dy;
    layer.forward(*backend, x.data(), y.data(), 4);
    layer.backward(*backend, x.data(), y.data(), d.data(), nullptr, 4, accumulate);
  }
  for (size_t i = 0; i < once.grads.size(); ++i)
    EXPECT_FLOAT_EQ(grads.data()[i], 2 * once.grads[i]) << i;
}

// Named as a PyTorch module's `layers` and `shortcut` lists (layers with parameters alone
// counted); batch normalization's running statistics among the buffers; a layer's weight penalty
// its own; a frozen block keeps its parameters among the buffers too and normalizes by its running
// statistics in training.
TEST(Residual, NamesBuffersAndFreezing) {
  auto backend = make_cpu_backend();
  const std::string layers =
      "{type: dense, units: 4}, "
      "{type: residual, layers: [{type: dense, units: 3, activation: relu}, {type: relu}, "
      "{type: batch_normalization}], shortcut: [{type: dense, units: 3}]%s}";
  auto model = build(*backend, Shape{2}, std::string(layers).replace(layers.find("%s"), 2, ""));
  std::vector<std::string> names, buffers;
  for (const ParamEntry& e : model->param_entries()) names.push_back(e.name);
  for (const ParamEntry& e : model->buffer_entries()) buffers.push_back(e.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"layers.0.weight", "layers.0.bias",
                                      "layers.1.layers.0.weight", "layers.1.layers.0.bias",
                                      "layers.1.layers.1.weight", "layers.1.layers.1.bias",
                                      "layers.1.shortcut.0.weight", "layers.1.shortcut.0.bias"}));
  EXPECT_EQ(buffers, (std::vector<std::string>{"layers.1.layers.1.running_mean",
                                               "layers.1.layers.1.running_var"}));
  // The summary: the block's row, then its layers', indented, with their own counts.
  const std::string summary = model->summary();
  const std::pair<const char*, const char*> rows[] = {
      {"layers.1 (Residual of 3 + 1)", "42"},
      {"  layers.1.layers.0 (Dense+relu)", "15"},
      {"  (ReLU)", "0"},
      {"  layers.1.layers.1 (BatchNormalization)", "12"},
      {"  layers.1.shortcut.0 (Dense)", "15"}};
  for (const auto& [name, count] : rows) {
    char row[160];
    std::snprintf(row, sizeof row, " %-40s %-24s %12s\n", name, "(None, 3)", count);
    EXPECT_NE(summary.find(row), std::string::npos) << row << "in\n" << summary;
  }
  // A deep block's names wider than the column widen it: every row's shape starts in one place.
  const std::string deep = build(*backend, Shape{3},
                                 "{type: residual, layers: [{type: residual, layers: [{type: "
                                 "residual, layers: [{type: batch_normalization}]}]}]}")
                               ->summary();
  ASSERT_NE(deep.find("      layers.0.layers.0.layers.0.layers.0 (BatchNormalization) (None, 3)"),
            std::string::npos)
      << deep;
  for (const char* start : {" input (Input) ", " layers.0 (Residual of 1) "}) {
    const size_t row = deep.find(start), name = deep.find("(BatchNormalization)");
    ASSERT_NE(row, std::string::npos) << deep;
    EXPECT_EQ(deep.find("(None, 3)", row) - deep.rfind('\n', row),
              deep.find("(None, 3)", name) - deep.rfind('\n', name))
        << start << " in\n"
        << deep;
  }

  // Keras' kernel_regularizer on a block's layer penalizes that layer's weight alone.
  auto penalized = build(*backend, Shape{3},
                         "{type: dense, units: 3, kernel_regularizer: {l2: 0.5}}, {type: residual, "
                         "layers: [{type: dense, units: 3, kernel_regularizer: {l1: 0.25}}], "
                         "shortcut: [{type: dense, units: 3, kernel_regularizer: {l2: 0.125}}]}");
  std::vector<std::string> penalties;
  for (const ParamEntry& e : penalized->param_entries())
    penalties.push_back(e.name + " " + std::to_string(e.l1) + " " + std::to_string(e.l2));
  EXPECT_EQ(penalties, (std::vector<std::string>{"layers.0.weight 0.000000 0.500000",
                                                 "layers.0.bias 0.000000 0.000000",
                                                 "layers.1.layers.0.weight 0.250000 0.000000",
                                                 "layers.1.layers.0.bias 0.000000 0.000000",
                                                 "layers.1.shortcut.0.weight 0.000000 0.125000",
                                                 "layers.1.shortcut.0.bias 0.000000 0.000000"}));

  auto frozen = build(*backend, Shape{2},
                      std::string(layers).replace(layers.find("%s"), 2, ", trainable: false"));
  EXPECT_EQ(frozen->param_count(), 12u);  // the first dense layer's alone
  ASSERT_EQ(frozen->buffer_entries().size(), 8u);
  EXPECT_TRUE(frozen->buffer_entries()[2].frozen);
  frozen->init_params(2);
  const std::vector<float> x = random_vector(6 * 2, 3);
  const float* inferred = frozen->forward(x.data(), 6);
  const std::vector<float> inference(inferred, inferred + 18);
  frozen->set_pass({true, 1, 0, {}});
  const float* trained = frozen->forward(x.data(), 6);
  EXPECT_EQ(std::vector<float>(trained, trained + 18), inference);
}

// The C++ API's keras::Residual is the config's block: the same names and counts (each layer's
// parameters, then its running statistics); frozen whole.
TEST(Residual, InTheCppApi) {
  keras::Sequential model(
      {keras::Dense(4, "relu"),
       keras::Residual({keras::Dense(3, "relu"), keras::BatchNormalization(), keras::Dense(4)}),
       keras::Residual({keras::Dense(2)}, {keras::Dense(2, "linear", false)}),
       keras::Dense(3, "softmax")},
      {5});
  model.build(world_of_one());
  std::vector<std::string> names;
  for (const NamedTensor& t : model.get_weights()) names.push_back(t.name);
  EXPECT_EQ(
      names,
      (std::vector<std::string>{
          "layers.0.weight", "layers.0.bias", "layers.1.layers.0.weight", "layers.1.layers.0.bias",
          "layers.1.layers.1.weight", "layers.1.layers.1.bias", "layers.1.layers.2.weight",
          "layers.1.layers.2.bias", "layers.1.layers.1.running_mean",
          "layers.1.layers.1.running_var", "layers.2.layers.0.weight", "layers.2.layers.0.bias",
          "layers.2.shortcut.0.weight", "layers.3.weight", "layers.3.bias"}));
  // 24 + (15 + 12 + 16) + (10 + 8) + 9
  EXPECT_EQ(model.count_params(), 24 + 43 + 18 + 9);
  keras::Sequential frozen({keras::frozen(keras::Residual({keras::Dense(5)})), keras::Dense(2)},
                           {5});
  EXPECT_NE(frozen.summary().find("Residual of 1, frozen"), std::string::npos) << frozen.summary();
}

TEST(Residual, ConfigRefusals) {
  EXPECT_EQ(build_error(Shape{4, 4, 2},
                        "{type: residual, layers: [{type: conv2d, filters: 3, kernel_size: 1}]}"),
            "c.yaml: model.layers.0: its layers end in (4, 4, 3) and its input (the identity "
            "shortcut) is (4, 4, 2), which are added: they must match (a strided or widening "
            "block takes a shortcut of a 1x1 conv2d with its strides and filters)");
  EXPECT_EQ(build_error(Shape{4, 4, 2},
                        "{type: residual, layers: [{type: conv2d, filters: 2, kernel_size: 1, "
                        "strides: 2}], shortcut: [{type: max_pooling2d, pool_size: 1}]}"),
            "c.yaml: model.layers.0: its layers end in (2, 2, 2) and its shortcut ends in (4, 4, "
            "2), which are added: they must match (a strided or widening block takes a shortcut "
            "of a 1x1 conv2d with its strides and filters)");
  EXPECT_EQ(build_error(Shape{4}, "{type: residual, layers: [{type: flatten}]}"),
            "c.yaml: model.layers.0.layers.0.type: flatten cannot be inside a residual block (its "
            "layers keep the input's layout and add to it)");
  EXPECT_EQ(build_error(Shape{4},
                        "{type: residual, layers: [{type: dense, units: 4, trainable: false}]}"),
            "c.yaml: model.layers.0.layers.0.trainable: a residual block's layers are frozen as "
            "one: give trainable to the block");
  EXPECT_NE(build_error(Shape{4}, "{type: residual, shortcut: [{type: dense, units: 4}]}")
                .find("model.layers.0.layers"),
            std::string::npos);
  EXPECT_NE(build_error(Shape{4}, "{type: residual, layers: []}").find("model.layers.0.layers"),
            std::string::npos);
  // Blocks inside blocks work, to a depth; a hostile nesting is one line, not a stack overflow.
  std::string nested = "{type: dense, units: 4}";
  for (int depth = 0; depth < 33; ++depth) nested = "{type: residual, layers: [" + nested + "]}";
  EXPECT_NE(build_error(Shape{4}, nested).find("residual blocks nested more than 32 deep"),
            std::string::npos);
  auto backend = make_cpu_backend();
  EXPECT_EQ(build(*backend, Shape{4},
                  "{type: residual, layers: [{type: residual, layers: [{type: dense, units: 4}]}]}")
                ->param_entries()[0]
                .name,
            "layers.0.layers.0.layers.0.weight");
  EXPECT_NE(build_error(Shape{4}, "{type: residual, layers: [{type: random_flip}]}")
                .find("model.layers.0.layers.0.type"),
            std::string::npos);
  EXPECT_NE(build_error(Shape{5},
                        "{type: embedding, input_dim: 9, output_dim: 4, mask_zero: true}, "
                        "{type: residual, layers: [{type: dense, units: 4}]}")
                .find("residual after c.yaml: model.layers.0 (mask_zero)"),
            std::string::npos);
}

}  // namespace
}  // namespace ddp
