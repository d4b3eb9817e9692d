// Invariants 1 and 2 under mpiexec for layers beyond dense ones, on every all-reduce path (as in
// test_ddp_training.cpp): dropout, batch normalization with per-rank and synchronized statistics,
// the multi-label example with its loss weights, weight penalty and exact metrics, the
// regression example (real-valued targets), class weights and sample weights (token models:
// test_ddp_text_models.cpp).

#include <gtest/gtest.h>

#include "ddp_training_fixture.h"

namespace ddp {
namespace {

using namespace dist_test;

class DdpModels : public DdpTraining {};

// A convnet with dropout, zero padding, a depthwise convolution (its kernels' gradients summed
// over the rank's samples, then over the ranks), an upsampling and a transposed convolution:
// Note [dropout mask] draws
// each sample's mask from its position in the epoch, so N ranks (and the partial last batch split
// over them) drop what one rank drops.
TEST_P(DdpModels, ConvnetWithDropoutMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::string layers =
      "model.layers=[{type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: relu},"
      " {type: max_pooling2d, pool_size: 2}, {type: zero_padding2d, padding: [[1, 0], [0, 1]]},"
      " {type: depthwise_conv2d, kernel_size: 3, activation: relu},"
      " {type: up_sampling2d, size: [2, 1]},"
      " {type: conv2d_transpose, filters: 2, kernel_size: 3, strides: 2, activation: tanh},"
      " {type: dropout, rate: 0.3}, {type: flatten}, {type: dense, units: 10, activation: "
      "softmax}]";
  const std::vector<std::string> convnet = {"data.train.features=64", "data.train.samples=98",
                                            "model.input=[8, 8, 1]", layers,
                                            "training.tail=partial"};
  const Config config = config_with(convnet);
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);  // 3 epochs
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  // Dropout is on: without it the same steps end elsewhere.
  std::vector<std::string> no_dropout = convnet;
  no_dropout[3] =
      layers.substr(0, layers.find("0.3")) + "0" + layers.substr(layers.find("0.3") + 3);
  EXPECT_GT(max_abs_diff(single, train_and_get_params(config_with(no_dropout), *local, 12)), 1e-4f);
}

// Note [augmentation]: each training sample is flipped, shifted, rotated and zoomed by the draws
// of its position in the epoch, so N ranks (and the partial last batch split over them) augment
// what one rank does; as data.train.augment and as Keras' random layers (Note [augmentation
// layers], with Keras' shifts by fractions of a pixel, contrast and brightness).
TEST_P(DdpModels, AugmentedConvnetMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::string layers =
      "{type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: relu},"
      " {type: max_pooling2d, pool_size: 2}, {type: flatten},"
      " {type: dense, units: 10, activation: softmax}]";
  const std::vector<std::string> convnet = {"data.train.features=64", "data.train.samples=98",
                                            "model.input=[8, 8, 1]", "model.layers=[" + layers,
                                            "training.tail=partial"};
  for (const std::string& augment :
       {std::string("data.train.augment={random_flip: horizontal_and_vertical,"
                    " random_translation: [0.25, 0.25], random_rotation: 0.1, random_zoom: 0.2}"),
        "model.layers=[{type: random_flip}, {type: random_translation, height_factor: 0.25,"
        " width_factor: 0.25}, {type: random_rotation, factor: 0.1}, {type: random_zoom,"
        " height_factor: 0.2}, {type: random_contrast, factor: 0.3, value_range: [-2, 2]},"
        " {type: random_brightness, factor: 0.1, value_range: [-2, 2]}, " +
            layers}) {
    std::vector<std::string> augmented = convnet;
    augmented.push_back(augment);
    const Config config = config_with(augmented);
    const std::vector<float> distributed = train_and_get_params(config, comm, 12);  // 3 epochs
    const std::vector<float> single = train_and_get_params(config, *local, 12);
    EXPECT_LE(max_abs_diff(distributed, single), 1e-5f) << augment;
    expect_identical_to_rank0(comm, distributed);
    // The augmentation is on: without it the same steps end elsewhere.
    EXPECT_GT(max_abs_diff(single, train_and_get_params(config_with(convnet), *local, 12)), 1e-4f)
        << augment;
  }
}

// Note [batch statistics]: synchronized batch normalization normalizes with the global batch's
// statistics, so N ranks train what one rank does, running statistics included; with per-rank
// statistics (the default) the running statistics are still the global batch's on every rank.
// 98 samples in global batches of 32 end with a batch of 2: on 4 ranks two have no rows and
// must still join each layer's sums, in the order the others run them and the buckets
// (overlap). Every rank checks the others' copies after every step (check_replicas_every).
TEST_P(DdpModels, SyncBatchNormMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const auto layers = [](const std::string& sync) {
    return "model.layers=[{type: conv2d, filters: 4, kernel_size: 3, padding: same},"
           " {type: batch_normalization, sync: " +
           sync +
           ", momentum: 0.5}, {type: relu},"
           " {type: max_pooling2d, pool_size: 2}, {type: dropout, rate: 0.3}, {type: flatten},"
           " {type: dense, units: 8}, {type: batch_normalization, sync: " +
           sync +
           "},"
           " {type: tanh}, {type: dense, units: 10, activation: softmax}]";
  };
  // SGD: the biases before batch normalization have a gradient of zero but for rounding, which
  // Adam would scale up to whole steps of either sign (the next test drops them: use_bias: false).
  const std::vector<std::string> convnet = {
      "data.train.features=64",
      "data.train.samples=98",
      "model.input=[8, 8, 1]",
      "training.tail=partial",
      "training.check_replicas_every=1",
      "optimizer={type: sgd, learning_rate: 0.1, momentum: 0.9}"};
  auto with = [&](std::vector<std::string> overrides, const std::string& sync) {
    overrides.insert(overrides.end(), convnet.begin(), convnet.end());
    overrides.push_back(layers(sync));
    return config_with(overrides);
  };
  const Config config = with({}, "true");
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);  // 3 epochs
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  const std::vector<float> overlapped = train_and_get_params(
      with({"training.overlap=true", "training.bucket_mb=0.001"}, "true"), comm, 12);
  EXPECT_LE(max_abs_diff(distributed, overlapped), 1e-6f);
  expect_identical_to_rank0(comm, overlapped);
  // Per-rank statistics: identical replicas; another model than one rank's once ranks split it.
  const std::vector<float> per_rank = train_and_get_params(with({}, "false"), comm, 12);
  expect_identical_to_rank0(comm, per_rank);
  if (comm.size() > 1) {
    EXPECT_GT(max_abs_diff(per_rank, single), 1e-4f);
  }
}

// Note [no bias]: the same convnet with Adam, its layers before batch normalization without a
// bias (Keras' use_bias=False). With biases there Adam turns their rounding-noise gradients into
// whole steps, different on N ranks (the test above uses SGD for that); without them N ranks
// train what one rank does.
TEST_P(DdpModels, AdamWithoutBiasBeforeBatchNormMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const auto convnet = [this](const std::string& use_bias) {
    return config_with(
        {"data.train.features=64", "data.train.samples=98", "model.input=[8, 8, 1]",
         "training.tail=partial", "training.check_replicas_every=1",
         "optimizer={type: adam, learning_rate: 0.01}",
         "model.layers=[{type: conv2d, filters: 4, kernel_size: 3, padding: same, use_bias: " +
             use_bias +
             "}, {type: batch_normalization, sync: true}, {type: relu},"
             " {type: max_pooling2d, pool_size: 2}, {type: flatten},"
             " {type: dense, units: 8, use_bias: " +
             use_bias +
             "}, {type: batch_normalization, sync: true}, {type: tanh},"
             " {type: dense, units: 10, activation: softmax}]"});
  };
  const Config config = convnet("false");
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);  // 3 epochs
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  // No parameters for the 4 + 8 biases.
  EXPECT_EQ(train_and_get_params(convnet("true"), *local, 0).size(), single.size() + 12);
}

// Note [residual blocks]: a small ResNet, its blocks' batch normalization synchronized (the
// shortcut's too) and a dropout inside a block, trains on N ranks what one rank trains; the ranks
// without rows in the partial last batch join each block's sums in the order the others run them,
// overlapped or not.
TEST_P(DdpModels, ResidualConvnetMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::string bn = "{type: batch_normalization, sync: true}";
  const std::string conv = "{type: conv2d, kernel_size: 3, padding: same, use_bias: false, ";
  const std::string layers =
      "model.layers=[" + conv + "filters: 4}, " + bn + ", {type: relu}, {type: residual, " +
      "layers: [" + conv + "filters: 4}, " + bn + ", {type: relu}, {type: dropout, rate: 0.2}, " +
      conv + "filters: 4}, " + bn + "]}, {type: relu}, {type: residual, layers: [" + conv +
      "filters: 6, strides: 2}, " + bn + ", {type: relu}, " + conv + "filters: 6}], shortcut: [" +
      "{type: conv2d, filters: 6, kernel_size: 1, strides: 2, use_bias: false}, " + bn +
      "]}, {type: relu}, {type: global_average_pooling2d}, {type: dense, units: 10, "
      "activation: softmax}]";
  std::vector<std::string> resnet = {"data.train.features=64",
                                     "data.train.samples=98",
                                     "model.input=[8, 8, 1]",
                                     "training.tail=partial",
                                     "training.check_replicas_every=1",
                                     "optimizer={type: adam, learning_rate: 0.01}",
                                     layers};
  const Config config = config_with(resnet);
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);  // 3 epochs
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  resnet.insert(resnet.end(), {"training.overlap=true", "training.bucket_mb=0.001"});
  const std::vector<float> overlapped = train_and_get_params(config_with(resnet), comm, 12);
  EXPECT_LE(max_abs_diff(distributed, overlapped), 1e-6f);
  expect_identical_to_rank0(comm, overlapped);
  // The block's dropout is on: without it the same steps end elsewhere.
  resnet.resize(resnet.size() - 2);
  resnet.back().replace(resnet.back().find("rate: 0.2"), 9, "rate: 0.0");
  EXPECT_GT(max_abs_diff(single, train_and_get_params(config_with(resnet), *local, 12)), 1e-4f);
}

// The multi-label example (configs/multilabel_example.yaml) with binary cross-entropy's pos_weight
// and an L2 kernel penalty, which rank 0 alone adds (Note [weight penalty]; on every rank it would
// count N times), trains on N ranks what one rank trains, overlapped or not; 98 samples in global
// batches of 32 leave two of 4 ranks without rows in the last one. The test metrics over 101
// samples (which no world size here divides), AUC's included, are exactly one rank's over the
// whole set with the same parameters (Note [exact metrics]).
TEST_P(DdpModels, MultiLabelExampleMatchesSingleProcessWithExactMetrics) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::vector<std::string> multilabel = {
      "data.train.samples=98",
      "data.test.samples=101",
      "model.layers.0.kernel_regularizer={l2: 0.01}",
      "loss={type: binary_crossentropy, pos_weight: [1, 2, 0.5, 1, 3]}",
      "metrics=[binary_accuracy, f1, macro_f1, precision, macro_recall, auc]",
      "training.tail=partial"};
  const std::string example = "multilabel_example.yaml";
  const Config config = example_with(example, multilabel);
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  auto overlapped = multilabel;
  overlapped.insert(overlapped.end(), {"training.overlap=true", "training.bucket_mb=0.001"});
  for (const Config& c : {config, example_with(example, overlapped)}) {
    const std::vector<float> distributed = train_and_get_params(c, comm, 12);
    EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
    expect_identical_to_rank0(comm, distributed);
  }
  // The penalty is in force: without it the same steps end elsewhere.
  auto unpenalized = multilabel;
  unpenalized[2] = "model.layers.0.kernel_regularizer={l2: 0}";
  EXPECT_GT(
      max_abs_diff(single, train_and_get_params(example_with(example, unpenalized), *local, 12)),
      1e-4f);

  auto backend = make_cpu_backend();
  const Dataset test = load_dataset(*config.test_data, comm.rank());
  Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()), test);
  trainer.train_steps(12);
  const EvalResult mine = trainer.evaluate(test);
  Trainer one(config, *local, *backend, load_dataset(config.train_data, 0), test);
  one.load_params(trainer.params_to_host(), trainer.buffers_to_host());
  const EvalResult reference = one.evaluate(test);
  ASSERT_EQ(mine.metrics.size(), 6u);
  for (size_t i = 0; i < mine.metrics.size(); ++i)
    EXPECT_EQ(mine.metrics[i].value, reference.metrics[i].value) << mine.metrics[i].name;
  EXPECT_NEAR(mine.loss, reference.loss, 1e-6);
}

// Regression: real-valued targets under mean_squared_error train on N ranks what one rank trains
// (98 samples in batches of 32: a partial last batch), and the test MAE over 101 samples is one
// rank's exactly.
TEST_P(DdpModels, RegressionExampleMatchesSingleProcessWithExactMetrics) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const Config config =
      example_with("regression_example.yaml",
                   {"data.train.samples=98", "data.test.samples=101", "training.tail=partial"});
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);

  auto backend = make_cpu_backend();
  const Dataset test = load_dataset(*config.test_data, comm.rank());
  ASSERT_TRUE(test.real_valued());
  Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()), test);
  const double before = trainer.evaluate(test).loss;
  trainer.train_steps(12);
  const EvalResult mine = trainer.evaluate(test);
  EXPECT_LT(mine.loss, before);  // it learns the targets
  Trainer one(config, *local, *backend, load_dataset(config.train_data, 0), test);
  one.load_params(trainer.params_to_host(), trainer.buffers_to_host());
  const EvalResult reference = one.evaluate(test);
  ASSERT_EQ(mine.metrics.size(), 1u);
  EXPECT_EQ(mine.metrics[0].name, "mae");
  EXPECT_EQ(mine.metrics[0].value, reference.metrics[0].value);
  EXPECT_NEAR(mine.loss, reference.loss, 1e-6);
}

// Note [class weights]: each rank's rows carry their classes' weights, so N ranks weigh what one
// rank does; with a partial last batch.
TEST_P(DdpModels, ClassWeightsMatchSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::vector<std::string> weighted = {
      "data.train.samples=98", "training.tail=partial",
      "loss={type: sparse_categorical_crossentropy, class_weight: {0: 3, 2: 0.25, 7: 2}}"};
  const Config config = config_with(weighted);
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  EXPECT_GT(max_abs_diff(single,
                         train_and_get_params(config_with({weighted[0], weighted[1]}), *local, 12)),
            1e-4f);  // the weights are in force
}

// Note [sample weights]: each rank's rows carry their samples' weights, so N ranks weigh what one
// rank does; with a partial last batch, for a cross-entropy and for the mean squared error.
TEST_P(DdpModels, SampleWeightsMatchSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const auto train = [](const Config& config, Communicator& c, bool weighted) {
    Dataset data = load_dataset(config.train_data, c.rank());
    if (weighted) {
      data.sample_weights.resize(static_cast<size_t>(data.size()));
      for (size_t i = 0; i < data.sample_weights.size(); ++i)
        data.sample_weights[i] = static_cast<float>((i * 7) % 11) / 4;  // 0 to 2.5
    }
    auto backend = make_cpu_backend();
    Trainer trainer(config, c, *backend, std::move(data), std::nullopt);
    trainer.train_steps(12);
    return trainer.params_to_host();
  };
  for (const std::string loss : {"sparse_categorical_crossentropy", "mean_squared_error"}) {
    const Config config =
        config_with({"data.train.samples=98", "training.tail=partial", "loss=" + loss});
    const std::vector<float> single = train(config, *local, true);
    const std::vector<float> distributed = train(config, comm, true);
    EXPECT_LE(max_abs_diff(distributed, single), 1e-5f) << loss;
    expect_identical_to_rank0(comm, distributed);
    EXPECT_GT(max_abs_diff(single, train(config, *local, false)), 1e-4f) << loss;  // in force
  }
}

// Note [bf16 products]: a rank's samples are multiplied with the same bf16 operands as in one
// process, and the weight gradients' fp32 sums differ by their order only (the dense model: 3e-8
// after 12 steps, where bf16 and fp32 products differ by 3e-3). Where an fp32 product feeds a bf16
// one, as the convnet's convolutions do its dense layer on CPUs without bf16 units (fp32
// convolutions there) or through oneDNN's fp32-summed convolutions, a difference in the order of
// its sums can move a value across a bf16 rounding boundary, a 2^-8 step the next steps carry on:
// 6e-7 with AMX, 4e-6 with oneDNN held to AVX-512 and 2e-5 to AVX2 (ONEDNN_MAX_CPU_ISA), where
// bf16 and fp32 products differ by 6e-3 to 2e-2.
TEST_P(DdpModels, Bf16ProductsMatchSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::vector<std::string> base = {
      "data.train.samples=98", "training.tail=partial",
      "optimizer={type: sgd, learning_rate: 0.05, momentum: 0.9}"};
  // The dense model, and a convnet whose second convolution (8 channels) oneDNN takes in bf16.
  const std::vector<std::vector<std::string>> models = {
      {},
      {"data.train.features=64", "model.input=[8, 8, 1]",
       "model.layers=[{type: conv2d, filters: 8, kernel_size: 3, padding: same, activation: "
       "relu}, {type: conv2d, filters: 8, kernel_size: 3, padding: same, activation: relu}, "
       "{type: flatten}, {type: dense, units: 10, activation: softmax}]"}};
  const float tolerances[] = {1e-5f, 2e-4f};
  for (const auto& model : models) {
    std::vector<std::string> fp32 = base;
    fp32.insert(fp32.end(), model.begin(), model.end());
    std::vector<std::string> bf16 = fp32;
    bf16.push_back("training.bf16_matmul=true");
    const std::vector<float> single = train_and_get_params(config_with(bf16), *local, 12);
    const std::vector<float> distributed = train_and_get_params(config_with(bf16), comm, 12);
    EXPECT_LE(max_abs_diff(distributed, single), tolerances[&model - models.data()])
        << model.size();
    expect_identical_to_rank0(comm, distributed);
    // The bf16 operands are in force.
    EXPECT_GT(max_abs_diff(single, train_and_get_params(config_with(fp32), *local, 12)), 1e-3f);
  }
}

// Note [frozen layers]: a convnet whose convolution, first batch normalization (synchronized, so
// it would sum over the ranks were it not frozen) and output layer are frozen trains on N ranks
// what it trains on one, the ranks without rows in the last batch joining only the trained
// layers' sums.
TEST_P(DdpModels, FrozenLayersMatchSingleProcess) {
  MpiCommunicator comm;
  const Config config =
      config_with({"data.train.features=64", "data.train.samples=98", "model.input=[8, 8, 1]",
                   "training.tail=partial", "training.check_replicas_every=1",
                   "optimizer={type: sgd, learning_rate: 0.1, momentum: 0.9}",
                   "model.layers=[{type: conv2d, filters: 4, kernel_size: 3, trainable: false},"
                   " {type: batch_normalization, sync: true, trainable: false}, {type: relu},"
                   " {type: max_pooling2d, pool_size: 2}, {type: flatten}, {type: dense, units: 8},"
                   " {type: batch_normalization, sync: true}, {type: tanh},"
                   " {type: dense, units: 10, activation: softmax, trainable: false}]"});
  expect_trains_as_one_process(config, comm, 12);  // 3 epochs
}

INSTANTIATE_TEST_SUITE_P(Paths, DdpModels, ::testing::Values("shm", "mpi", "hierarchical"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ddp
