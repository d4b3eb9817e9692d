// The Trainer's side of checkpoints: when they are written, capturing every rank's state
// (collective) and continuing from a validated one. The file format is train/checkpoint.h's
// business. And the check that every rank holds the same parameters (train/replica_check.h).

#include <algorithm>

#include "core/error.h"
#include "train/replica_check.h"
#include "train/trainer.h"

namespace ddp {

void Trainer::set_checkpointing(const CheckpointConfig& policy, CheckpointHook hook) {
  checkpoint_policy_ = policy;
  checkpoint_hook_ = std::move(hook);
}

void Trainer::checkpoint_now() {
  settle_verdict();
  if (!checkpoint_hook_ || last_checkpoint_step_ == completed_steps_) return;
  check_data_unchanged();
  checkpoint_hook_(*this);
  last_checkpoint_step_ = completed_steps_;
}

std::vector<float> Trainer::gather_state(const StateTensor& state) {
  std::vector<float> full(model_->param_count());
  backend_.copy_to_host(state.data.data(), full.data() + sync_->shard().offset, state.data.size());
  sync_->gather_shards(full);
  return full;
}

namespace {

std::vector<TensorSignature> signature_of(const std::vector<ParamEntry>& entries) {
  std::vector<TensorSignature> out;
  for (const ParamEntry& e : entries) out.push_back({e.name, e.shape, e.hwc});
  return out;
}

// Throws naming the first tensor where `theirs` (a checkpoint's) differs from `mine`.
void expect_same_tensors(const std::vector<TensorSignature>& mine,
                         const std::vector<TensorSignature>& theirs, const std::string& origin) {
  auto fail = [&origin](const std::string& what) { return CheckpointError(origin + ": " + what); };
  for (size_t i = 0; i < std::max(mine.size(), theirs.size()); ++i) {
    if (i >= theirs.size()) throw fail("model mismatch: checkpoint lacks " + mine[i].name);
    if (i >= mine.size())
      throw fail("model mismatch: checkpoint has an extra tensor " + theirs[i].name);
    if (mine[i] != theirs[i])
      throw fail("model mismatch at " + mine[i].name + ": expected shape " + mine[i].shape.str() +
                 ", checkpoint has " + theirs[i].name + " " + theirs[i].shape.str());
  }
}

}  // namespace

std::vector<TensorSignature> Trainer::signature() const {
  return signature_of(model_->param_entries());
}

std::vector<TensorSignature> Trainer::buffer_signature() const {
  return signature_of(model_->buffer_entries());
}

std::vector<float> Trainer::params_to_host() {
  std::vector<float> host(model_->param_count());
  backend_.copy_to_host(model_->params().data(), host.data(), host.size());
  return host;
}

std::vector<float> Trainer::buffers_to_host() {
  std::vector<float> host(model_->buffers().size());
  backend_.copy_to_host(model_->buffers().data(), host.data(), host.size());
  return host;
}

void Trainer::load_params(std::span<const float> params, std::span<const float> buffers) {
  backend_.copy_to_device(params.data(), model_->params().data(), params.size());
  backend_.copy_to_device(buffers.data(), model_->buffers().data(), buffers.size());
  last_replica_check_step_ = -1;
}

TrainingState Trainer::capture() {
  // A checkpoint of diverged replicas would preserve the divergence.
  verify_replicas();
  TrainingState s;
  s.epoch = epoch_;
  s.step_in_epoch = step_in_epoch_;
  s.completed_steps = completed_steps_;
  s.epoch_sums = epoch_sums_;
  comm_.all_reduce_sum(std::span<double>(s.epoch_sums));
  s.world_size = comm_.size();
  s.batch_mode = config_.training.batch_mode == BatchMode::kGlobal ? "global" : "per_rank";
  s.global_batch = global_batch();
  s.per_rank_batch = per_rank_batch_;
  s.seed = config_.seed;
  s.signature = signature();
  s.optimizer = optimizer_->name();
  s.optimizer_steps = optimizer_->steps_taken();
  s.config_yaml = YAML::Dump(config_.resolved);
  s.params = params_to_host();
  s.buffer_signature = buffer_signature();
  s.buffers = buffers_to_host();
  for (const StateTensor& t : optimizer_->state())
    s.optimizer_state.emplace_back(t.name, gather_state(t));
  capture_callbacks(s);
  return s;
}

void Trainer::restore(const TrainingState& s, const std::string& origin) {
  auto fail = [&origin](const std::string& what) { return CheckpointError(origin + ": " + what); };
  // Note [frozen layers]: the same tensors, split otherwise between parameters and buffers.
  const auto named = [](const std::vector<ParamEntry>& entries, const std::string& name) {
    return std::any_of(entries.begin(), entries.end(),
                       [&](const ParamEntry& e) { return e.name == name; });
  };
  for (const TensorSignature& t : s.signature)
    if (named(model_->buffer_entries(), t.name))
      throw fail("model mismatch: " + t.name +
                 " is trained in the checkpoint but frozen here (trainable: false)");
  for (const TensorSignature& t : s.buffer_signature)
    if (named(model_->param_entries(), t.name))
      throw fail("model mismatch: " + t.name +
                 " is frozen in the checkpoint (trainable: false) but trained here");
  expect_same_tensors(signature(), s.signature, origin);
  expect_same_tensors(buffer_signature(), s.buffer_signature, origin);
  if (s.epoch_sums.size() != epoch_sums_.size())
    throw fail("metrics mismatch: the checkpoint's epoch sums hold " +
               std::to_string(s.epoch_sums.size()) + " values, the configured metrics need " +
               std::to_string(epoch_sums_.size()) + " (metrics changed?)");
  if (s.optimizer != optimizer_->name())
    throw fail("optimizer mismatch: checkpoint has " + s.optimizer + " state, config uses " +
               optimizer_->name());
  const std::vector<StateTensor> state = optimizer_->state();
  if (state.size() != s.optimizer_state.size())
    throw fail("optimizer mismatch: checkpoint has " + std::to_string(s.optimizer_state.size()) +
               " state buffer(s), " + optimizer_->name() + " here has " +
               std::to_string(state.size()) + " (momentum or use_ema changed?)");
  for (size_t i = 0; i < state.size(); ++i)
    if (state[i].name != s.optimizer_state[i].first)
      throw fail("optimizer mismatch: state '" + s.optimizer_state[i].first + "' vs '" +
                 state[i].name + "'");
  if (s.seed != config_.seed)
    throw fail("seed mismatch: checkpoint " + std::to_string(s.seed) + ", config " +
               std::to_string(config_.seed) + " (the data order would not continue)");
  const std::string mode =
      config_.training.batch_mode == BatchMode::kGlobal ? "global" : "per_rank";
  if (s.batch_mode != mode)
    throw fail("batch mode mismatch: checkpoint uses " + s.batch_mode + ", config " + mode);
  if (s.global_batch != global_batch())
    throw fail("global batch mismatch: checkpoint " + std::to_string(s.global_batch) + " (" +
               std::to_string(s.world_size) + " ranks x " + std::to_string(s.per_rank_batch) +
               "), now " + std::to_string(global_batch()) + " (" + std::to_string(comm_.size()) +
               " ranks x " + std::to_string(per_rank_batch_) +
               "); to change the world size, train with global_batch_size");
  if (s.completed_steps != s.epoch * steps_per_epoch_ + s.step_in_epoch ||
      s.step_in_epoch >= steps_per_epoch_)
    throw fail("position (epoch " + std::to_string(s.epoch) + ", step " +
               std::to_string(s.step_in_epoch) + ") does not fit " +
               std::to_string(steps_per_epoch_) + " steps per epoch of this data");

  // The signatures fix the sizes of what a decoded checkpoint holds; a state put together in
  // memory (the C++ API's) is checked as well before anything is copied.
  bool sizes_fit =
      s.params.size() == model_->param_count() && s.buffers.size() == model_->buffers().size();
  for (const auto& [name, values] : s.optimizer_state)
    sizes_fit &= values.size() == s.params.size();
  if (!sizes_fit) throw fail("parameter, buffer or optimizer state sizes do not fit this model");
  restore_callbacks(s, origin);
  backend_.copy_to_device(s.params.data(), model_->params().data(), s.params.size());
  backend_.copy_to_device(s.buffers.data(), model_->buffers().data(), s.buffers.size());
  for (size_t i = 0; i < state.size(); ++i)  // this rank's shard (all of it without ZeRO-1)
    backend_.copy_to_device(s.optimizer_state[i].second.data() + sync_->shard().offset,
                            state[i].data.data(), state[i].data.size());
  optimizer_->set_steps_taken(s.optimizer_steps);
  epoch_ = s.epoch;
  step_in_epoch_ = s.step_in_epoch;
  completed_steps_ = s.completed_steps;
  sampler_->set_epoch(epoch_);  // train_step() reshuffles only at an epoch's first step
  last_checkpoint_step_ = completed_steps_;
  // The sums so far are global: one rank carries them so the epoch's final all-reduce is right.
  epoch_sums_ = comm_.rank() == 0 ? s.epoch_sums : std::vector<double>(s.epoch_sums.size());
  start_schedule();
}

void Trainer::write_average_into_params() {
  for (const StateTensor& t : optimizer_->state()) {
    if (t.name != "average") continue;
    const std::vector<float> average = gather_state(t);  // collective: every rank the same bits
    backend_.copy_to_device(average.data(), model_->params().data(), average.size());
    sync_->params_written();  // where the ranks share one copy of them
    last_replica_check_step_ = -1;
  }
}

EvalResult Trainer::evaluate_average(const Dataset& data) {
  // Every rank copies the weights before any writes (shared ones too): the gather in
  // write_average_into_params is a collective, as is evaluate's sum before they are put back.
  const std::vector<float> weights = params_to_host();
  write_average_into_params();
  const EvalResult result = evaluate(data);
  backend_.copy_to_device(weights.data(), model_->params().data(), weights.size());
  sync_->params_written();
  last_replica_check_step_ = -1;
  return result;
}

void Trainer::start_at_epoch(int64_t epoch) {
  epoch_ = epoch;
  step_in_epoch_ = 0;
  completed_steps_ = epoch * steps_per_epoch_;
  last_checkpoint_step_ = completed_steps_;
  start_schedule();
}

void Trainer::verify_replicas() {
  settle_verdict();
  // An epoch end that also writes a checkpoint would otherwise check the same parameters twice.
  if (last_replica_check_step_ == completed_steps_) return;
  check_replicas(comm_, backend_, *model_, completed_steps_);
  last_replica_check_step_ = completed_steps_;
}

}  // namespace ddp
