#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace ddp {

// One buffer of optimizer state, as large as the flat parameter buffer, in backend memory.
struct StateTensor {
  std::string name;  // "m", "v", "velocity"
  std::span<float> data;
};

// Note [weight average]: Keras' use_ema. Where the optimizer keeps one (keep_average), each
// update() also moves the average of the parameters it just wrote towards them, while they are in
// cache: average = momentum * average + (1 - momentum) * params, the first step (momentum 0)
// copying them, as Keras' optimizers do after each step. The average is state like the moments
// (its piece of the shard is this rank's; a checkpoint holds it as "optimizer.average"), so it
// resumes, shards under ZeRO-1 and gathers as they do; the trainer writes it into the parameters
// every ema_overwrite_frequency steps and at the end of fit (Keras' finalize_variable_values).
// Validation during training sees the parameters, as in Keras.

// Updates the model's flat parameter buffer (or this rank's shard of it, ZeRO-1) from the flat
// gradient buffer. One step is begin_step() followed by update() over pieces that together cover
// the optimizer's state once, in any order: a step may run piece by piece while each piece is in
// cache (Note [sharded step]), or in one call (step()).
class Optimizer {
 public:
  Optimizer(ComputeBackend& backend, size_t count) : backend_(backend), count_(count) {}
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;

  // The step's updates read every gradient multiplied by grad_scale (Note [gradient clipping]).
  void begin_step(float grad_scale = 1) {
    ++steps_;
    grad_scale_ = grad_scale;
    if (first_step_ == 0) first_step_ = steps_;
    began_step();
  }
  // params and grads are elements [state_offset, state_offset + params.size()) of the state.
  // With GradCheck::kFinite, returns false when a gradient was NaN or infinite (see
  // ComputeBackend::sgd_update); true otherwise.
  bool update(size_t state_offset, std::span<float> params, std::span<const float> grads, float lr,
              GradCheck check);
  // A whole step in one piece.
  bool step(std::span<float> params, std::span<const float> grads, float lr, GradCheck check) {
    begin_step();
    return update(0, params, grads, lr, check);
  }

  // Where a step of this optimizer is SGD's momentum step and nothing else (MomentumStep): the
  // momentum and the velocity of state elements [state_offset, +count), made writable on this
  // object's first step as update() makes them, so that a backend may apply the step itself in
  // place of update() (Note [update in the tiles]). Otherwise nothing.
  struct Momentum {
    float momentum;
    float* velocity;
  };
  std::optional<Momentum> momentum_only(size_t state_offset, size_t count);

  // Note [weight average]: keeps the parameters' moving average from the next step on.
  void keep_average(float momentum) {
    average_ = DeviceBuffer(backend_, count_);
    average_momentum_ = momentum;
  }

  // What a checkpoint must hold to continue exactly: the state buffers and the step count.
  std::vector<StateTensor> state() {
    std::vector<StateTensor> tensors = own_state();
    if (average_.size() > 0) tensors.push_back({"average", average_.span()});
    return tensors;
  }
  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }

 protected:
  // The optimizer's own state buffers (state() adds the average).
  virtual std::vector<StateTensor> own_state() = 0;
  // update() after its range checks.
  virtual bool update_piece(size_t state_offset, std::span<float> params,
                            std::span<const float> grads, float lr, GradCheck check) = 0;
  // Work of a step that its pieces share, done once before them: pieces may update on several
  // threads at once (ThreadTeam::run).
  virtual void began_step() {}
  // The momentum where a step is SGD's momentum step and nothing else (momentum_only).
  virtual std::optional<float> momentum_only_coefficient() const { return std::nullopt; }
  ComputeBackend& backend_;
  int64_t steps_ = 0;
  float grad_scale_ = 1;  // this step's (begin_step)

 private:
  // Checks that [state_offset, +count) lies in the state and has `grads` gradients; makes it
  // writable on the first step.
  void prepare_piece(size_t state_offset, size_t count, size_t grads);
  size_t count_;  // elements of state
  // The step this object took first (from 1; 0 before): its updates make their pieces of the
  // state writable before reading and writing them (ComputeBackend::prepare_for_writing). Piece by
  // piece, so that a rank that only ever updates its share of the state (split weight gradients)
  // holds only that share in memory.
  int64_t first_step_ = 0;
  DeviceBuffer average_;  // Note [weight average]: empty where none is kept
  float average_momentum_ = 0;
};

inline void Optimizer::prepare_piece(size_t state_offset, size_t count, size_t grads) {
  if (grads != count || state_offset > count_ || count > count_ - state_offset)
    throw std::logic_error(name() + ": update of [" + std::to_string(state_offset) + ", +" +
                           std::to_string(count) + ") with " + std::to_string(grads) +
                           " gradients, state of " + std::to_string(count_));
  if (steps_ == first_step_) {
    for (const StateTensor& tensor : state())
      backend_.prepare_for_writing(tensor.data.data() + state_offset, count);
  }
}

inline bool Optimizer::update(size_t state_offset, std::span<float> params,
                              std::span<const float> grads, float lr, GradCheck check) {
  prepare_piece(state_offset, params.size(), grads.size());
  const bool finite = update_piece(state_offset, params, grads, lr, check);
  if (average_.size() > 0)
    backend_.moving_average(params.data(), average_.data() + state_offset, params.size(),
                            steps_ == 1 ? 0.0f : average_momentum_);
  return finite;
}

inline std::optional<Optimizer::Momentum> Optimizer::momentum_only(size_t state_offset,
                                                                   size_t count) {
  const std::optional<float> momentum = momentum_only_coefficient();
  if (!momentum || average_.size() > 0) return std::nullopt;  // the tiles keep no average
  prepare_piece(state_offset, count, count);
  return Momentum{*momentum, state().front().data.data() + state_offset};
}

}  // namespace ddp
