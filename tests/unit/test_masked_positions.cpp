// Note [masked positions]: with a padding mask at the model's output, a class per step counts the
// real steps only. The loss and accuracy are means over the real tokens (checked against the
// model's own predictions), the gradient is their mean's (a batch of padded texts trains as its
// real tokens taken one text each), the loss skips a target marked ignored, and what does not go
// with such a mask is refused naming the key.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "tagging_config.h"

namespace ddp {
namespace {

constexpr int64_t kSteps = test::kTaggedSteps, kClasses = test::kTagClasses;

// Texts of 2 to kSteps tokens in [1, 12), padded with id 0, tagged per token, under mask_zero.
Config padded_config(const std::string& middle, const std::vector<std::string>& overrides = {}) {
  return test::tagging_config(middle, overrides, /*padded=*/true);
}

std::unique_ptr<Trainer> fitted(const Config& config, Communicator& comm, ComputeBackend& backend) {
  auto trainer = std::make_unique<Trainer>(config, comm, backend,
                                           load_dataset(config.train_data, 0), std::nullopt);
  trainer->fit();
  return trainer;
}

// The loss and accuracy are means over the real tokens; precision, recall and F1 count each real
// token as a row of its own.
TEST(MaskedPositions, LossAndMetricsCountRealTokensOnly) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Config config =
      padded_config("{type: lstm, units: 8, return_sequences: true}, ",
                    {"metrics=[accuracy, precision, macro_recall, macro_f1]", "training.epochs=3"});
  const auto trainer = fitted(config, *comm, *backend);
  Dataset test = load_dataset(*config.test_data, 0);
  const std::vector<float> probabilities = trainer->predict(test);
  ASSERT_EQ(probabilities.size(), static_cast<size_t>(test.size() * kSteps * kClasses));
  test.sample_weights.resize(static_cast<size_t>(test.size()));
  double loss = 0, weighted = 0, correct = 0, real = 0;
  std::vector<double> tp(kClasses), fp(kClasses), fn(kClasses);
  for (int64_t i = 0; i < test.size(); ++i) {
    test.sample_weights[i] = 0.25f * static_cast<float>(i % 5);
    for (int64_t t = 0; t < kSteps; ++t) {
      if (test.features[i * kSteps + t] == 0) continue;  // padding
      const float* p = probabilities.data() + (i * kSteps + t) * kClasses;
      const int32_t label = test.labels[i * kSteps + t];
      loss -= std::log(static_cast<double>(p[label]));
      weighted -= test.sample_weights[i] * std::log(static_cast<double>(p[label]));
      const auto predicted = std::max_element(p, p + kClasses) - p;
      correct += predicted == label;
      ++(predicted == label ? tp[label] : fn[label]);
      if (predicted != label) ++fp[predicted];
      ++real;
    }
  }
  ASSERT_LT(real, static_cast<double>(test.size() * kSteps) * 0.8);  // much padding
  Dataset unweighted = test;
  unweighted.sample_weights.clear();
  const EvalResult plain = trainer->evaluate(unweighted);
  EXPECT_NEAR(plain.loss, loss / real, 1e-5 * plain.loss);
  ASSERT_EQ(plain.metrics.size(), 4u);
  EXPECT_DOUBLE_EQ(plain.metrics[0].value, correct / real);
  EXPECT_DOUBLE_EQ(plain.metrics[1].value, correct / real);  // micro precision: one class a row
  double recall = 0, f1 = 0;
  for (int64_t c = 0; c < kClasses; ++c) {
    ASSERT_GT(tp[c] + fn[c], 0);
    recall += tp[c] / (tp[c] + fn[c]) / kClasses;
    f1 += 2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]) / kClasses;
  }
  ASSERT_LT(f1, 0.99);  // some tags wrong
  EXPECT_NEAR(plain.metrics[2].value, recall, 1e-12);
  EXPECT_NEAR(plain.metrics[3].value, f1, 1e-12);
  // Weighted as Keras weighs: each sample's weight on its real tokens, over their count.
  EXPECT_NEAR(trainer->evaluate(test).loss, weighted / real, 1e-5 * plain.loss);
}

// Without context (a dense layer at each step), one step over a whole set of texts trained by
// `texts` is one step over the tokens that `counts` keeps, each a text of its own: the same mean,
// the same SGD step, the same epoch loss and accuracy.
void expect_trains_as_counted_tokens(const Config& texts, Dataset data,
                                     const std::function<bool(size_t)>& counts) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  Dataset tokens = data;
  tokens.features.clear();
  tokens.labels.clear();
  for (size_t i = 0; i < data.features.size(); ++i) {
    if (!counts(i)) continue;
    tokens.features.push_back(data.features[i]);
    tokens.labels.push_back(data.labels[i]);
  }
  const auto counted = static_cast<int64_t>(tokens.features.size());
  ASSERT_LT(counted, data.size() * kSteps * 9 / 10);
  tokens.sample_shape = Shape({1});
  tokens.label_width = 1;
  const Config one_by_one = test::tagging_config(
      "{type: dense, units: 7, activation: tanh}, ",
      {"training.global_batch_size=" + std::to_string(counted), "model.input=[1]"});
  Trainer whole(texts, *comm, *backend, std::move(data), std::nullopt);
  whole.fit();
  Trainer split(one_by_one, *comm, *backend, std::move(tokens), std::nullopt);
  split.fit();
  test::expect_trained_alike(whole, split);
}

const std::string kNoContext = "{type: dense, units: 7, activation: tanh}, ";

// The whole set in one step: one batch of 64, or four accumulated micro-batches of 16 (each with
// its own count of real tokens, the earlier ones' gradients rescaled as the count grows).
const std::vector<std::vector<std::string>> kOneStep = {
    {"training.global_batch_size=64"},
    {"training.global_batch_size=16", "training.accumulation_steps=4"}};

TEST(MaskedPositions, PaddedTextsTrainAsTheirRealTokensOneByOne) {
  for (const std::vector<std::string>& step : kOneStep) {
    SCOPED_TRACE(step.back());
    const Config texts = padded_config(kNoContext, step);
    Dataset data = load_dataset(texts.train_data, 0);
    const std::vector<float> ids = data.features;
    expect_trains_as_counted_tokens(texts, std::move(data), [&](size_t i) { return ids[i] != 0; });
  }
}

// PyTorch's ignore_index, Keras' ignore_class: labels of that class count nowhere.
TEST(MaskedPositions, IgnoredLabelsTrainAsTheOthersOneByOne) {
  for (std::vector<std::string> step : kOneStep) {
    SCOPED_TRACE(step.back());
    step.push_back("loss={type: sparse_categorical_crossentropy, ignore_class: -100}");
    const Config texts = test::tagging_config(kNoContext, step);
    Dataset data = load_dataset(texts.train_data, 0);
    // Every third tag of the first 16 texts, every fifth after: the micro-batches count unequally.
    for (size_t i = 0; i < data.labels.size(); ++i)
      if (i % (i < 16 * kSteps ? 3 : 5) == 0) data.labels[i] = -100;
    expect_trains_as_counted_tokens(texts, std::move(data),
                                    [](size_t i) { return i % (i < 16 * kSteps ? 3 : 5) != 0; });
  }
}

// With a class a sample, ignored samples count nowhere: the loss and accuracy are the others'.
TEST(MaskedPositions, IgnoredSamplesCountNowhere) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Config config = test::small_config(
      {"loss={type: sparse_categorical_crossentropy, ignore_class: 255}", "training.epochs=2"},
      "ignore.yaml");
  Dataset data = load_dataset(config.train_data, 0);
  const auto trainer = fitted(config, *comm, *backend);
  Dataset kept = data, marked = data;
  kept.features.clear();
  kept.labels.clear();
  const auto width = static_cast<size_t>(data.sample_shape.numel());
  for (size_t s = 0; s < data.labels.size(); ++s) {
    if (s % 4 == 1) {
      marked.labels[s] = 255;
      continue;
    }
    kept.labels.push_back(data.labels[s]);
    kept.features.insert(kept.features.end(), data.features.begin() + s * width,
                         data.features.begin() + (s + 1) * width);
  }
  const EvalResult a = trainer->evaluate(marked), b = trainer->evaluate(kept);
  EXPECT_NEAR(a.loss, b.loss, 1e-6 * b.loss);
  EXPECT_DOUBLE_EQ(a.metrics.at(0).value, b.metrics.at(0).value);
  EXPECT_GT(std::abs(a.loss - trainer->evaluate(data).loss), 1e-4);
}

// One-hot tags of padded texts (categorical_crossentropy a step) skip the padding as the sparse
// ones do: the same training.
TEST(MaskedPositions, OneHotTagsOfPaddedTextsTrainAsIndices) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const std::string steps = "{type: lstm, units: 8, return_sequences: true}, ";
  const Config sparse = padded_config(steps),
               one_hot = padded_config(steps, {"loss=categorical_crossentropy"});
  Trainer a(sparse, *comm, *backend, load_dataset(sparse.train_data, 0), std::nullopt);
  a.fit();
  Trainer b(one_hot, *comm, *backend, load_dataset(one_hot.train_data, 0), std::nullopt);
  b.fit();
  test::expect_trained_alike(a, b);
}

TEST(MaskedPositions, TheLossSkipsIgnoredTargets) {
  auto backend = make_cpu_backend();
  const std::vector<float> logits = {1, 2, 0.5f, -1, 0, 3, 2, 2, -2};
  const std::vector<float> targets = {1, kIgnoredTarget, 0};
  const std::vector<float> kept = {1, 0};
  std::vector<float> grads(9, 7.0f), kept_grads(6);
  const std::vector<float> kept_logits = {1, 2, 0.5f, 2, 2, -2};
  const LossStats all =
      backend->softmax_cross_entropy(logits.data(), targets.data(), nullptr, TargetKind::kSparse,
                                     grads.data(), 0.5f, 3, 3, Readback::kNow);
  const LossStats two =
      backend->softmax_cross_entropy(kept_logits.data(), kept.data(), nullptr, TargetKind::kSparse,
                                     kept_grads.data(), 0.5f, 2, 3, Readback::kNow);
  EXPECT_GT(two.loss_sum, 0);
  EXPECT_EQ(all.loss_sum, two.loss_sum);
  EXPECT_EQ(all.correct, two.correct);
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(grads[c], kept_grads[c]);
    EXPECT_EQ(grads[3 + c], 0.0f);  // the ignored row: no gradient
    EXPECT_EQ(grads[6 + c], kept_grads[3 + c]);
  }
}

TEST(MaskedPositions, WhatDoesNotGoWithThemIsRefusedByName) {
  const std::string steps = "{type: lstm, units: 4, return_sequences: true}, ";
  const std::string refused =
      "tags.yaml: model.layers.0.mask_zero: its padding mask reaches the model's output; end "
      "it with a recurrent layer without return_sequences, or global_average_pooling1d, or take "
      "a class per step (a categorical cross-entropy)";
  EXPECT_EQ(test::trainer_error(padded_config(steps, {"loss=mean_squared_error"})), refused);
  // loss.ignore_class: the sparse loss's alone, without class weights.
  EXPECT_EQ(test::small_trainer_error({"loss={type: categorical_crossentropy, ignore_class: -1}"},
                                      "ignore.yaml"),
            "ignore.yaml: loss.ignore_class: only sparse_categorical_crossentropy ignores a class "
            "of its labels (Keras' ignore_class, PyTorch's ignore_index)");
  const std::string ignoring = "loss={type: sparse_categorical_crossentropy, ignore_class: -1";
  EXPECT_EQ(test::small_trainer_error({ignoring + ", class_weight: {0: 2}}"}, "ignore.yaml"),
            "ignore.yaml: loss.class_weight: loss.ignore_class leaves labels out; weigh samples "
            "instead (sample_weights)");
  // A label below zero without ignore_class names the key that would leave it out.
  Config tags = test::tagging_config(steps);
  Dataset data = load_dataset(tags.train_data, 0);
  data.labels[7] = -100;
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  try {
    Trainer trainer(tags, *comm, *backend, std::move(data), std::nullopt);
    ADD_FAILURE() << "a label of -100 was taken";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              "data.train (synthetic tags(64x5, vocabulary 12)): label -100 of sample 1, label "
              "column 2 is outside [0, 3) for a model with 3 outputs (labels to leave out: "
              "loss.ignore_class, PyTorch's ignore_index)");
  }
}

}  // namespace
}  // namespace ddp
