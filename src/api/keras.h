#pragma once
// Note [C++ API]: Keras' Sequential / compile / fit in C++, for programs that link the installed
// library (find_package(ddp_trainer), target ddp_trainer::ddp_trainer). Each call only writes the
// matching part of a config, in the YAML schema ddp_train reads; fit() parses it with the same
// checks (errors name the key, as for a file) and trains through the same Session and Trainer,
// under mpirun with the same guarantees. A program and a YAML file that say the same train the
// same model, bit for bit (tests/consumer/seed_example.cpp against configs/seed_example.yaml).
//
//   ddp::keras::Runtime runtime(&argc, &argv);  // MPI under mpirun, else a world of one
//   ddp::keras::Sequential model({ddp::keras::Dense(64, "relu"), ddp::keras::Dense(10, "softmax")},
//                                {10});
//   model.compile(ddp::keras::Adam(0.001), "sparse_categorical_crossentropy", {"accuracy"});
//   auto history = model.fit(runtime, ddp::keras::synthetic(1000, 10, 10), {.epochs = 10});

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "api/keras_functional.h"
#include "api/keras_layers.h"
#include "comm/communicator.h"
#include "comm/mpi_communicator.h"
#include "train/metric_set.h"
#include "train/metrics.h"
#include "train/safetensors.h"

namespace ddp {
struct Session;
struct TrainingState;
class Trainer;
}  // namespace ddp

namespace ddp::keras {

// MPI for as long as it lives when started by mpirun/mpiexec, otherwise a world of one.
class Runtime {
 public:
  Runtime(int* argc, char*** argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  Communicator& comm() { return *comm_; }
  int rank() const { return comm_->rank(); }
  int size() const { return comm_->size(); }

 private:
  std::unique_ptr<MpiRuntime> mpi_;
  std::unique_ptr<Communicator> comm_;
};

// Keras 3's Adam and AdamW: Keras' rule (optimizer.rule: keras, AdamHyper) and defaults
// (epsilon 1e-7; AdamW's decoupled weight decay 0.004).
Spec Adam(double learning_rate = 0.001, double beta_1 = 0.9, double beta_2 = 0.999,
          double epsilon = 1e-7);
Spec AdamW(double learning_rate = 0.001, double weight_decay = 0.004, double beta_1 = 0.9,
           double beta_2 = 0.999, double epsilon = 1e-7);
// Keras 3's SGD: Keras' rule (optimizer.rule: keras, SgdHyper), the weight decay decoupled.
Spec SGD(double learning_rate = 0.01, double momentum = 0.0, bool nesterov = false,
         double weight_decay = 0.0);
// Keras 3's RMSprop, rule and defaults (optimizer.rule: keras).
Spec RMSprop(double learning_rate = 0.001, double rho = 0.9, double momentum = 0.0,
             double epsilon = 1e-7, bool centered = false, double weight_decay = 0.0);
// Keras 3's Adagrad, Adamax, Nadam and Lion (optimizer.rule: keras), weight decay decoupled.
Spec Adagrad(double learning_rate = 0.001, double initial_accumulator_value = 0.1,
             double epsilon = 1e-7, double weight_decay = 0.0);
Spec Adamax(double learning_rate = 0.001, double beta_1 = 0.9, double beta_2 = 0.999,
            double epsilon = 1e-7, double weight_decay = 0.0);
Spec Nadam(double learning_rate = 0.001, double beta_1 = 0.9, double beta_2 = 0.999,
           double epsilon = 1e-7, double weight_decay = 0.0);
Spec Lion(double learning_rate = 0.001, double beta_1 = 0.9, double beta_2 = 0.99,
          double weight_decay = 0.0);
// `optimizer` keeping the moving average of the weights (Keras' use_ema, Note [weight average]):
// written into the model every ema_overwrite_frequency steps (0: Keras' None) and when fit ends.
Spec with_weight_average(Spec optimizer, double ema_momentum = 0.99,
                         int64_t ema_overwrite_frequency = 0);

// A loss with settings (`loss: {type: ...}`), for compile. from_logits: the model ends without a
// softmax (the loss applies it); without, a model ending in softmax gives probabilities, which
// the loss takes fused, and one ending otherwise logits, as with it.
Spec CategoricalCrossentropy(double label_smoothing = 0.0, bool from_logits = false);
// ignore_class: labels of that class count nowhere (Note [masked positions]).
Spec SparseCategoricalCrossentropy(bool from_logits = false,
                                   std::optional<int64_t> ignore_class = std::nullopt);

// Keras' EarlyStopping callback (Note [early stopping]), for FitOptions::callbacks.
Spec EarlyStopping(const std::string& monitor = "val_loss", int64_t patience = 0,
                   double min_delta = 0.0, bool restore_best_weights = false,
                   const std::string& mode = "auto", std::optional<double> baseline = std::nullopt,
                   int64_t start_from_epoch = 0);
// Keras' ReduceLROnPlateau callback (Note [reduce on plateau]), for FitOptions::callbacks.
Spec ReduceLROnPlateau(const std::string& monitor = "val_loss", double factor = 0.1,
                       int64_t patience = 10, double min_delta = 1e-4, int64_t cooldown = 0,
                       double min_lr = 0.0, const std::string& mode = "auto");

// Keras' BackupAndRestore callback (Note [run checkpoints]): the fit writes checkpoints into
// `backup_dir` after every epoch (or every `save_freq_steps` steps) and, as it starts, continues
// from the newest one there, so a fit that was killed goes on where its last checkpoint left it,
// on any number of ranks; a fit that ends removes them, unless `delete_checkpoint` is false.
// Other checkpoint.* keys (FitOptions::set) go with it: without one a fit writes no checkpoints.
Spec BackupAndRestore(const std::string& backup_dir, int64_t save_freq_steps = 0,
                      bool delete_checkpoint = true);
// Keras' SwapEMAWeights callback (swap_on_epoch false): the fit's validation measures the
// optimizer's weight average (with_weight_average; optimizer.validate_average).
Spec SwapEMAWeights();
// Data the config could name (the same keys as data.train in a YAML file).
Spec synthetic(int64_t samples, int64_t features, int64_t classes);
Spec idx(const std::string& images, const std::string& labels, bool normalize = true);
Spec csv(const std::string& path, bool header = true);

// Samples in this process's memory, the same on every rank: features row-major with
// `sample_shape` per sample, and either labels (a class index per sample, or the same number of
// 0/1 labels per sample for binary_crossentropy) or real-valued targets, the same number per
// sample (regression with mean_squared_error), both row-major.
struct Arrays {
  std::vector<int64_t> sample_shape;
  std::vector<float> features;
  std::vector<int32_t> labels;
  std::vector<float> targets = {};
  // Keras' sample_weight: one per sample, each finite and >= 0, or empty (all 1); they weigh the
  // loss in fit and evaluate (Note [sample weights]).
  std::vector<float> sample_weights = {};
};

struct FitOptions {
  int64_t epochs = 1;
  int64_t batch_size = 32;         // global, split over the ranks (training.global_batch_size)
  bool partial_last_batch = true;  // Keras' fit: the last, smaller batch is trained too
  uint64_t seed = 0;
  bool verbose = true;               // rank 0 prints Keras' epoch lines
  std::vector<Spec> callbacks = {};  // EarlyStopping, ReduceLROnPlateau, BackupAndRestore
  // Keras': with arrays and no validation data, the last samples (before shuffling) validate and
  // the first floor(n (1 - validation_split)) train; in [0, 1).
  double validation_split = 0;
  // Keras' validation_freq: the validation data are evaluated after every this many epochs (the
  // epochs between have no val_ values, and EarlyStopping or ReduceLROnPlateau watching one skip
  // them); a list of epochs goes in `set`: {"training.validation_freq=[1, 5, 10]"}.
  int64_t validation_freq = 1;
  // Keras' class_weight: a weight per class for the training loss (one class, or one 0/1 label,
  // per sample; classes not given weigh 1). Note [class weights].
  std::map<int64_t, double> class_weight = {};
  // Called on every rank as the fit starts, the model built and its weights in place (Keras'
  // on_train_begin).
  std::function<void()> on_train_begin = {};
  // Called on every rank before each epoch with its number, 1-based as EpochRecord::epoch
  // (Keras' on_epoch_begin).
  std::function<void(int64_t)> on_epoch_begin = {};
  // Called on every rank after each epoch with its record (Keras' on_epoch_end and its logs);
  // returning true on rank 0 stops the fit after this epoch on every rank (as
  // set_stop_training(true) in it).
  std::function<bool(const EpochRecord&)> on_epoch_end = {};
  // Called on every rank before each training step with its 0-based index in the epoch (Keras'
  // on_train_batch_begin), and after it with the epoch's running loss and metrics over all ranks
  // (on_train_batch_end and its logs; a small all-reduce each step while it is set).
  std::function<void(int64_t)> on_batch_begin = {};
  std::function<void(const BatchLogs&)> on_batch_end = {};
  // Keras' initial_epoch: the fit trains epochs initial_epoch + 1 to epochs (1-based), each as the
  // run that trained the ones before it would (data order, draws, schedules), from the weights
  // and optimizer state it has: a fit of 2 epochs and then this one with epochs 4 and
  // initial_epoch 2 train what one fit of 4 does. A BackupAndRestore's checkpoint overrides it.
  int64_t initial_epoch = 0;
  // Any other config keys, as --set would give them: {"training.allreduce=mpi", ...}.
  std::vector<std::string> set = {};
};

// Note [Keras optimizer state]: the optimizer's state as Keras keeps it with a model (a .keras
// file's optimizer variables), in ddp-trainer's terms.
struct OptimizerSlots {
  std::string optimizer;     // Optimizer::name(): adam, adamw, sgd_keras, rmsprop_keras, ...
  int64_t iterations = 0;    // steps taken (Keras' optimizer.iterations)
  double learning_rate = 0;  // the rate the next step starts from; NaN: none (a schedule's)
  // Each of the optimizer's state buffers ("m", "v", "velocity", ...) by name, as one tensor per
  // trained parameter in get_weights()' names and ddp-trainer's own layouts.
  std::vector<std::pair<std::string, std::vector<NamedTensor>>> buffers = {};
  // Scalar state Keras keeps after the buffers (Nadam's product of momentum coefficients, a
  // function of the iterations here).
  std::vector<double> scalars = {};
};

// One record per epoch, the same on every rank.
struct History {
  std::vector<EpochRecord> epochs;
};

// The name a Sequential's errors carry in place of a config file's.
inline constexpr const char* kSequentialOrigin = "Sequential";

// Note [model state]: after fit() a Sequential keeps the trained model and optimizer (the fit's
// Session), for predict, evaluate, the weights and the next fit, which continues from them as
// Keras' does: from the weights and, unless compile() was called in between (a new optimizer),
// the optimizer's moments and step count; its epochs, data order, callbacks and learning-rate
// schedule start afresh (Keras' schedule would go on from the step count). The Runtime of the last
// fit must outlive these calls. Every call is made on every rank.
class Sequential {
 public:
  // input_shape: one sample's shape (model.input); empty: taken from the data.
  explicit Sequential(std::vector<Spec> layers, std::vector<int64_t> input_shape = {});
  // Keras' add() and pop(): the last layer appended or removed, and set_input_shape() Keras'
  // add(keras.Input(shape)), before the model is built (a fit or build; after: ConfigError, the
  // layers of a built model being fixed here).
  void add(const Spec& layer);
  void pop();
  void set_input_shape(std::vector<int64_t> input_shape);
  // Keras' layers[layer].trainable (Note [frozen layers]): false freezes a layer with weights (on
  // one without, it does nothing). Once the model is built, as in Keras, compile() again before
  // the next fit, which trains on from the last weights with the new set frozen.
  void set_trainable(size_t layer, bool trainable);
  bool trainable(size_t layer) const;
  ~Sequential();
  Sequential(Sequential&&) noexcept;
  Sequential& operator=(Sequential&&) noexcept;

  // With the loss's default metrics (README, Losses and metrics), or with `metrics`: none for an
  // empty list (Keras' compile without metrics, whose evaluate() gives the loss alone).
  void compile(const Spec& optimizer, const std::string& loss);
  void compile(const Spec& optimizer, const Spec& loss);
  void compile(const Spec& optimizer, const std::string& loss, std::vector<std::string> metrics);
  void compile(const Spec& optimizer, const Spec& loss, std::vector<std::string> metrics);
  History fit(Runtime& runtime, const Spec& train, const FitOptions& options = {},
              const std::optional<Spec>& validation = std::nullopt);
  // The arrays are taken by value: pass them with std::move and their memory becomes the
  // training set's, with no copy.
  History fit(Runtime& runtime, Arrays train, const FitOptions& options = {},
              std::optional<Arrays> validation = std::nullopt);
  // The whole config fit() trains (data section included when the data are a Spec).
  YAML::Node config(const FitOptions& options) const;

  // Keras' build(): collective; makes the model from the input shape given to the constructor
  // and its weights (from the seed 0, or as set or loaded before), so that predict, get_weights,
  // save_weights and the rest work before a fit (evaluate after compile()); a fit then trains on
  // from these weights. After a fit or build, nothing unless compile() was called since: then
  // the model takes the compiled loss and metrics (evaluate() does this itself, its targets laid
  // out as `labels_per_sample`, the evaluated data's label columns, say: a class, or one-hot rows,
  // a step).
  void build(Runtime& runtime, std::optional<int64_t> labels_per_sample = std::nullopt);
  bool built() const { return session_ != nullptr; }
  // One sample's shape as the model takes it (Keras' input_shape without the batch axis): the
  // constructor's, or after a fit the data's; empty when neither is known yet.
  std::vector<int64_t> input_shape() const;
  // One sample's output shape (Keras' output_shape without the batch axis), from the layers.
  std::vector<int64_t> output_shape() const;

  // After a fit or build (before: ConfigError), on every rank:
  // Collective: the model's outputs (probabilities for softmax) for x's samples, (samples,
  // outputs) row-major, computed by each rank for its share of the rows and the same on every
  // rank; x.labels may be empty.
  std::vector<float> predict(Arrays x);
  // Collective: the loss, then the compiled metrics, over `data` split over the ranks, as the
  // epochs report val_loss and val_<metric>.
  std::vector<MetricValue> evaluate(Arrays data);
  // Note [model weights]: the parameters, then the running statistics, in PyTorch's names and
  // layouts ("layers.0.weight" (out, in), "layers.0.bias", ...).
  std::vector<NamedTensor> get_weights();
  // The same in ddp-trainer's own layouts (Note [PyTorch layout]: NHWC, as Keras'), which the
  // Python module turns into Keras' per layer.
  std::vector<NamedTensor> get_weights_in_own_layout();
  // set_weights() of tensors in ddp-trainer's own layouts (`call` names the caller in errors).
  void set_weights_in_own_layout(std::vector<NamedTensor> weights, const std::string& call);
  // Collective: rank 0's tensors into every replica (all of the model's, with their shapes).
  // Before the first fit they are loaded when it starts, in place of the initial weights.
  void set_weights(std::vector<NamedTensor> weights);
  // How save_weights and load_weights write and read a weights file, on rank 0 alone: a
  // safetensors file in PyTorch's layouts unless given (the Python module's Keras weights files).
  // A writer or reader given exchanges get_weights()'s names in ddp-trainer's own layouts (Note
  // [PyTorch layout]: NHWC, as Keras'); either throws an Error naming the file.
  using WeightsWriter =
      std::function<void(const std::string& path, const std::vector<NamedTensor>& weights)>;
  using WeightsReader = std::function<std::vector<NamedTensor>(const std::string& path)>;
  // Collective: rank 0 writes the weights (a safetensors file durably, which --init-from and
  // PyTorch read); an error is thrown on every rank.
  void save_weights(const std::string& path, const WeightsWriter& write = {});
  // Collective: set_weights from a file (read on rank 0 when the weights are set).
  void load_weights(const std::string& path, const WeightsReader& read = {});
  // Each layer's type, as the config names it (dense, conv2d, batch_normalization, ...; a
  // bidirectional recurrent layer's with bidirectional_ before it: its Keras variables differ).
  std::vector<std::string> layer_types() const;
  // The layers with parameters, blocks' layers among them, in the order of Keras' model.layers
  // for the model keras_config describes (Note [Keras functional models]): the order of Keras'
  // weights files and optimizer variables.
  std::vector<KerasLayerRef> keras_layers() const;
  // Keras 3's config.json of this model (Note [Keras model config]), from which
  // keras.models.load_model rebuilds it; after a fit (before: ConfigError naming save()), this
  // rank alone.
  std::string keras_config();
  // Keras 3's compile_config (config.json) of the compiled optimizer, loss and metrics, where
  // Keras has each of them with the settings ddp-trainer trains by (an optimizer by Keras' rule, a
  // schedule Keras has, a loss and metrics by name); empty otherwise. This rank alone.
  std::string keras_compile_config() const;
  // The optimizer steps an epoch of the fit in progress or the last one takes (Keras' params
  // "steps"); 0 before a fit.
  int64_t steps_per_epoch() const;
  // Keras' model.optimizer.iterations: the steps the optimizer the next fit continues with has
  // taken (0 before the first fit, or after compile()); this rank alone.
  int64_t optimizer_iterations() const;
  // Note [Keras optimizer state]: collective, after a fit or build: the optimizer's state that
  // the next fit continues from (with no buffers when compile() was called since: the next fit
  // starts a fresh optimizer).
  OptimizerSlots optimizer_slots();
  // Collective, after a fit or build: the optimizer state that `on_rank0` returns on rank 0 (in
  // the form of optimizer_slots(), which it is given; nothing: none) becomes the one the next fit
  // continues from, on every rank; a rate other than NaN is set as set_learning_rate. Tensors
  // missing, misshapen or not finite throw CheckpointError naming `origin` on every rank.
  void load_optimizer_slots(
      const std::function<std::optional<OptimizerSlots>(const OptimizerSlots&)>& on_rank0,
      const std::string& origin);
  // Keras' model.optimizer.learning_rate. During a fit (from its callbacks): the rate of the next
  // step; setting it makes every later step train with rank 0's value, on every rank (Note [rate
  // set by a callback]: ConfigError unless the schedule is constant), and the next fit starts
  // from it, as Keras' optimizer variable keeps it. Otherwise the rate the next fit starts from
  // (the compiled optimizer's); this rank alone, and ConfigError before compile().
  double learning_rate() const;
  void set_learning_rate(double rate);
  // Keras' model.stop_training: set to true by a callback during a fit (any hook), on rank 0,
  // it ends the fit on every rank after the step in progress, or the step about to start (the
  // epoch's record covers the steps trained, and its evaluation and on_epoch_end run), or after
  // the epoch that on_epoch_end ends. Every fit starts with it false (before on_train_begin), and
  // it stays as the fit left it.
  bool stop_training() const { return stop_training_; }
  void set_stop_training(bool stop) { stop_training_ = stop; }
  // Keras' summary table: each layer's output shape and parameter count, then the totals. Before
  // the first fit it needs the input shape (given to the constructor); this rank alone.
  std::string summary() const;
  // Keras' count_params(): the number of the model's weights, the trained parameters and the
  // running statistics (before the first fit, from the layers and the input shape, as summary()).
  int64_t count_params() const;

 private:
  bool compiled() const { return !optimizer_.IsNull(); }
  // ConfigError naming `call` once the model is built.
  void refuse_once_built(const char* call) const;
  // optimizer_slots() of `state`, captured from `trainer`.
  OptimizerSlots slots_of(Trainer& trainer, const TrainingState& state) const;
  void compile_with(const Spec& optimizer, const Spec& loss,
                    std::optional<std::vector<std::string>> metrics);
  // train_it false: the session is made and the weights loaded, and nothing is trained (build).
  History run(Runtime& runtime, YAML::Node config, bool in_memory, Arrays* train,
              Arrays* validation, const FitOptions& options, bool train_it = true);
  // Collective: `next` starts from the last fit's model (Note [model state]).
  void continue_from_last_fit(Communicator& comm, Trainer& next);
  // The last fit's trainer; throws ConfigError naming `call` before the first fit.
  Trainer& trained(const char* call);
  // Loads `weights` (rank 0's) into the last fit's model, or keeps them for the next fit.
  // (in ddp-trainer's own layouts where `own_layout`, else PyTorch's).
  void put_weights(std::function<std::vector<NamedTensor>()> weights, const std::string& origin,
                   bool own_layout = false);

  YAML::Node model_;
  YAML::Node optimizer_;
  YAML::Node loss_;
  YAML::Node metrics_;
  std::unique_ptr<Session> session_;  // Note [model state]
  Runtime* runtime_ = nullptr;        // the last fit's
  Communicator* comm_ = nullptr;      // the last fit's runtime's
  bool compiled_since_fit_ = false;   // the next fit starts a fresh optimizer
  bool fitting_ = false;              // a fit is running (its on_epoch_end may call the model)
  bool stop_training_ = false;
  std::function<std::vector<NamedTensor>()> pending_weights_;  // for the first fit
  std::string pending_origin_;
  bool pending_own_layout_ = false;
};

}  // namespace ddp::keras
