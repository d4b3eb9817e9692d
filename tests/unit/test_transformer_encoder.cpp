// TransformerEncoder (Note [self-attention]): forward against the definition in double (post- and
// pre-normalization, relu and gelu, a padding mask), every gradient against central finite
// differences (invariant 4), with dropout's masks too, padding steps that change nothing, the bits
// on a team of threads, causal attention that never reads later steps, and its place in a model
// (PyTorch's names, the refusals).

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "finite_differences.h"
#include "nn/model_builder.h"
#include "nn/transformer_encoder.h"

namespace ddp {
namespace {

constexpr int64_t kSteps = 4, kDim = 6, kHeads = 2, kInner = 5, kBatch = 2;
constexpr float kEpsilon = 1e-5f;

struct Options {
  Activation act = Activation::kRelu;
  bool normalize_first = false;
  float dropout = 0;
  bool causal = false;
};

// A TransformerEncoder with every parameter drawn (normalization scales near 1), bound to host
// vectors in param_specs() order, and their gradients.
struct BoundEncoder {
  explicit BoundEncoder(const Options& o, uint64_t seed = 3)
      : layer(kSteps, kDim, kHeads, kInner, o.act, o.dropout, kEpsilon, o.normalize_first,
              o.causal) {
    std::vector<float*> p, g;
    for (const ParamSpec& spec : layer.param_specs()) {
      const auto n = static_cast<size_t>(spec.shape.numel());
      const bool scale = spec.name.starts_with("norm") && spec.name.ends_with("weight");
      params.push_back(scale ? random_vector(n, seed++, 0.5f, 1.5f) : random_vector(n, seed++));
      grads.emplace_back(n);
    }
    for (size_t i = 0; i < params.size(); ++i) {
      p.push_back(params[i].data());
      g.push_back(grads[i].data());
    }
    layer.bind(p, g);
  }
  TransformerEncoder layer;
  std::vector<std::vector<float>> params, grads;  // in_proj w, b, out_proj w, b, linear1, ...
};

using Rows = std::vector<std::vector<double>>;

Rows linear(const Rows& in, const std::vector<float>& w, const std::vector<float>& b) {
  Rows out(in.size(), std::vector<double>(b.size()));
  for (size_t r = 0; r < in.size(); ++r)
    for (size_t o = 0; o < b.size(); ++o) {
      out[r][o] = b[o];
      for (size_t i = 0; i < in[r].size(); ++i) out[r][o] += w[o * in[r].size() + i] * in[r][i];
    }
  return out;
}

Rows layer_norm(const Rows& in, const std::vector<float>& gamma, const std::vector<float>& beta) {
  Rows out = in;
  for (auto& row : out) {
    double mean = 0, var = 0;
    for (double v : row) mean += v / static_cast<double>(row.size());
    for (double v : row) var += (v - mean) * (v - mean) / static_cast<double>(row.size());
    for (size_t c = 0; c < row.size(); ++c)
      row[c] = gamma[c] * (row[c] - mean) / std::sqrt(var + kEpsilon) + beta[c];
  }
  return out;
}

Rows plus(Rows a, const Rows& b) {
  for (size_t r = 0; r < a.size(); ++r)
    for (size_t c = 0; c < a[r].size(); ++c) a[r][c] += b[r][c];
  return a;
}

// One sample's steps through attention: each head's softmax over the real keys (all keys where
// none is real; causal: the query's own and earlier ones) of q.k / sqrt(head_dim), the values
// mixed by it, out_proj over the heads.
Rows attention(const BoundEncoder& e, const Rows& x, const float* mask, bool causal) {
  const Rows qkv = linear(x, e.params[0], e.params[1]);
  const int64_t head_dim = kDim / kHeads;
  Rows mixed(kSteps, std::vector<double>(kDim));
  bool any_real = false;
  for (int64_t j = 0; j < kSteps; ++j) any_real = any_real || !mask || mask[j] != 0;
  for (int64_t h = 0; h < kHeads; ++h)
    for (int64_t i = 0; i < kSteps; ++i) {
      std::vector<double> p(kSteps, 0);
      double sum = 0;
      for (int64_t j = 0; j < kSteps; ++j) {
        if ((any_real && mask && mask[j] == 0) || (causal && j > i)) continue;
        double s = 0;
        for (int64_t d = 0; d < head_dim; ++d)
          s += qkv[i][h * head_dim + d] * qkv[j][kDim + h * head_dim + d];
        sum += p[j] = std::exp(s / std::sqrt(static_cast<double>(head_dim)));
      }
      for (int64_t j = 0; j < kSteps; ++j)
        for (int64_t d = 0; d < head_dim; ++d)
          mixed[i][h * head_dim + d] += p[j] / sum * qkv[j][2 * kDim + h * head_dim + d];
    }
  return linear(mixed, e.params[2], e.params[3]);
}

Rows feed_forward(const BoundEncoder& e, const Rows& x, Activation act) {
  Rows inner = linear(x, e.params[4], e.params[5]);
  for (auto& row : inner)
    for (double& v : row)
      v = act == Activation::kRelu ? std::max(v, 0.0)
                                   : 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  return linear(inner, e.params[6], e.params[7]);
}

std::vector<double> by_definition(const BoundEncoder& e, const Options& o,
                                  const std::vector<float>& x, const std::vector<float>& mask) {
  std::vector<double> y;
  for (int64_t b = 0; b < kBatch; ++b) {
    Rows in(kSteps, std::vector<double>(kDim));
    for (int64_t t = 0; t < kSteps; ++t)
      for (int64_t c = 0; c < kDim; ++c) in[t][c] = x[(b * kSteps + t) * kDim + c];
    const float* m = mask.empty() ? nullptr : mask.data() + b * kSteps;
    Rows out;
    if (o.normalize_first) {
      const Rows s1 = plus(in, attention(e, layer_norm(in, e.params[8], e.params[9]), m, o.causal));
      out = plus(s1, feed_forward(e, layer_norm(s1, e.params[10], e.params[11]), o.act));
    } else {
      const Rows s1 = layer_norm(plus(in, attention(e, in, m, o.causal)), e.params[8], e.params[9]);
      out = layer_norm(plus(s1, feed_forward(e, s1, o.act)), e.params[10], e.params[11]);
    }
    for (const auto& row : out) y.insert(y.end(), row.begin(), row.end());
  }
  return y;
}

struct Case {
  Options options;
  bool masked;
};

class TransformerEncoderTest : public ::testing::TestWithParam<Case> {};

// The second sample's last step is padding; the first's are all real.
std::vector<float> padding_mask(bool masked) {
  if (!masked) return {};
  return {1, 1, 1, 1, 1, 1, 1, 0};
}

TEST_P(TransformerEncoderTest, ForwardIsTheDefinition) {
  auto backend = make_cpu_backend();
  const Case c = GetParam();
  BoundEncoder e(c.options);
  const std::vector<float> x = random_vector(kBatch * kSteps * kDim, 11, -2, 2);
  const std::vector<float> mask = padding_mask(c.masked);
  std::vector<float> y(x.size());
  e.layer.set_input_mask(mask.empty() ? nullptr : mask.data());
  e.layer.forward(*backend, x.data(), y.data(), kBatch);
  const std::vector<double> expected = by_definition(e, c.options, x, mask);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y[i], expected[i], 2e-5) << "y[" << i << "]";
  EXPECT_EQ(e.layer.output_mask(), mask.empty() ? nullptr : mask.data());
}

TEST_P(TransformerEncoderTest, GradientsMatchFiniteDifferences) {
  auto backend = make_cpu_backend();
  const Case c = GetParam();
  BoundEncoder e(c.options);
  const std::vector<float> mask = padding_mask(c.masked);
  e.layer.set_input_mask(mask.empty() ? nullptr : mask.data());
  // A training pass: dropout's masks depend on the key and the samples' positions alone, so each
  // forward of the differences draws the ones backward used.
  Pass pass;
  pass.training = true;
  pass.key = 77;
  pass.first_position = 5;
  e.layer.set_pass(pass);
  std::vector<float> x = random_vector(kBatch * kSteps * kDim, 12), y(x.size());
  const auto objective = expect_input_gradient_matches(*backend, e.layer, x, y, kBatch, 13);
  for (size_t i = 0; i < e.params.size(); ++i)
    expect_matches_finite_differences(objective, e.params[i], e.grads[i],
                                      e.layer.param_specs()[i].name.c_str());
  // The keys' bias: exactly the zero it is, not rounding noise (Note [self-attention]).
  for (int64_t c = kDim; c < 2 * kDim; ++c) EXPECT_EQ(e.grads[1][c], 0.0f) << "key bias " << c;
}

INSTANTIATE_TEST_SUITE_P(Variants, TransformerEncoderTest,
                         ::testing::Values(Case{{}, false},
                                           Case{{Activation::kGelu, true, 0}, false},
                                           Case{{}, true}, Case{{Activation::kGelu, true, 0}, true},
                                           Case{{Activation::kRelu, false, 0.3f}, true},
                                           Case{{Activation::kGelu, true, 0, true}, false},
                                           Case{{Activation::kRelu, false, 0.3f, true}, true}));

// Whatever a padding step holds, the real steps' outputs are the same: no query attends to it.
TEST(TransformerEncoderMask, PaddingStepsChangeNothing) {
  auto backend = make_cpu_backend();
  BoundEncoder e({});
  const std::vector<float> mask = {1, 1, 0, 0, 1, 0, 0, 0};
  std::vector<float> x = random_vector(kBatch * kSteps * kDim, 14), y(x.size()), again(x.size());
  e.layer.set_input_mask(mask.data());
  e.layer.forward(*backend, x.data(), y.data(), kBatch);
  for (size_t i = 0; i < x.size(); ++i)
    if (mask[i / kDim] == 0) x[i] = 100.0f + static_cast<float>(i);
  e.layer.forward(*backend, x.data(), again.data(), kBatch);
  for (size_t i = 0; i < y.size(); ++i) {
    if (mask[i / kDim] != 0) {
      EXPECT_EQ(y[i], again[i]) << "y[" << i << "]";
    }
  }
}

// Causal: whatever the steps from t on hold, the steps before t come out the same, bit for bit.
TEST(TransformerEncoderCausal, LaterStepsChangeNothing) {
  auto backend = make_cpu_backend();
  BoundEncoder e({.causal = true});
  const std::vector<float> x = random_vector(kBatch * kSteps * kDim, 15);
  std::vector<float> y(x.size()), again(x.size());
  e.layer.forward(*backend, x.data(), y.data(), kBatch);
  for (int64_t t = 1; t < kSteps; ++t) {
    std::vector<float> changed = x;
    for (size_t i = 0; i < x.size(); ++i)
      if (static_cast<int64_t>(i / kDim) % kSteps >= t) changed[i] = 50.0f - static_cast<float>(i);
    e.layer.forward(*backend, changed.data(), again.data(), kBatch);
    for (size_t i = 0; i < y.size(); ++i) {
      if (static_cast<int64_t>(i / kDim) % kSteps < t) {
        EXPECT_EQ(y[i], again[i]) << "from step " << t << ": y[" << i << "]";
      } else {
        EXPECT_NE(y[i], again[i]) << "from step " << t << ": y[" << i << "]";
      }
    }
  }
}

// Note [threads per rank]: the heads' products shared out by sample, the same bits as one thread.
TEST(TransformerEncoderThreads, TheBitsOfOneThread) {
  auto one = make_cpu_backend(true, 1);
  auto team = make_cpu_backend(true, 2);
  const int64_t steps = 48, dim = 32, batch = 16;  // past the backend's threshold for sharing
  std::vector<float> out[2];
  ComputeBackend* backends[] = {one.get(), team.get()};
  for (int k = 0; k < 2; ++k) {
    TransformerEncoder layer(steps, dim, 4, 40, Activation::kRelu, 0, kEpsilon, false);
    std::vector<float> params, grads;
    std::vector<float*> p, g;
    for (const ParamSpec& spec : layer.param_specs())
      params.resize(params.size() + spec.shape.numel());
    params = random_vector(params.size(), 15, -0.3f, 0.3f);
    grads.assign(params.size(), 0);
    size_t at = 0;
    for (const ParamSpec& spec : layer.param_specs()) {
      p.push_back(params.data() + at);
      g.push_back(grads.data() + at);
      at += static_cast<size_t>(spec.shape.numel());
    }
    layer.bind(p, g);
    const std::vector<float> x = random_vector(batch * steps * dim, 16);
    std::vector<float> y(x.size()), dy = random_vector(x.size(), 17), dx(x.size());
    layer.forward(*backends[k], x.data(), y.data(), batch);
    layer.backward(*backends[k], x.data(), y.data(), dy.data(), dx.data(), batch, false);
    out[k] = y;
    out[k].insert(out[k].end(), dx.begin(), dx.end());
    out[k].insert(out[k].end(), grads.begin(), grads.end());
  }
  EXPECT_EQ(out[0], out[1]);
}

LayerSpec encoder_spec(int64_t heads, int64_t intermediate) {
  LayerSpec spec{"transformer_encoder", 0, "relu", "model.layers.1"};
  spec.heads = heads;
  spec.intermediate = intermediate;
  spec.epsilon = kEpsilon;
  return spec;
}

// PyTorch's nn.TransformerEncoderLayer names, in its state_dict's order, under the model's.
TEST(TransformerEncoderModel, PyTorchNamesAndShapes) {
  auto backend = make_cpu_backend();
  LayerSpec embedding{"embedding", 8, "linear", "model.layers.0"};
  embedding.vocabulary = 20;
  const std::vector<LayerSpec> specs = {embedding,
                                        encoder_spec(2, 16),
                                        {"global_average_pooling1d", 0, "linear", "model.layers.2"},
                                        {"dense", 3, "softmax", "model.layers.3"}};
  auto model = build_sequential(*backend, Shape{5}, specs);
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  for (const ParamEntry& entry : model->param_entries())
    if (entry.name.starts_with("layers.1.")) {
      names.push_back(entry.name.substr(9));
      shapes.push_back(entry.shape);
    }
  EXPECT_EQ(names,
            (std::vector<std::string>{
                "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
                "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
                "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"}));
  EXPECT_EQ(shapes[0], (Shape{24, 8}));
  EXPECT_EQ(shapes[4], (Shape{16, 8}));
  EXPECT_EQ(shapes[6], (Shape{8, 16}));
}

TEST(TransformerEncoderModel, RefusalsNameTheLayer) {
  auto backend = make_cpu_backend();
  LayerSpec embedding{"embedding", 6, "linear", "model.layers.0"};
  embedding.vocabulary = 20;
  const auto error = [&](const std::vector<LayerSpec>& specs, const Shape& input) {
    try {
      build_sequential(*backend, input, specs);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error({embedding, encoder_spec(4, 8)}, Shape{5}),
            "model.layers.1.num_heads: 4 heads do not divide the input's 6 features (each head "
            "takes features / num_heads of them)");
  EXPECT_EQ(error({encoder_spec(2, 8)}, Shape{6}),
            "model.layers.1: transformer_encoder needs an input of (steps, features), an "
            "embedding's output or a sequence, but gets (6)");
}

}  // namespace
}  // namespace ddp
