#pragma once
// Note [model weights]: a trained model's weights as named tensors, the parameters and then the
// running statistics, named and laid out as PyTorch's state_dict holds them (Note [parameter
// names], Note [PyTorch layout]): what --export-safetensors writes and --init-from reads, and what
// the C++ API's get_weights / set_weights / save_weights / load_weights exchange.

#include <functional>
#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "train/safetensors.h"
#include "train/trainer.h"

namespace ddp {

// Which layouts the tensors are in (Note [PyTorch layout]): PyTorch's, or ddp-trainer's own,
// NHWC as Keras' (a convolution's weight (filters, kernel_h, kernel_w, channels)).
enum class WeightLayout { kPyTorch, kOwn };

// This rank's weights (every rank holds the same).
std::vector<NamedTensor> named_weights(Trainer& trainer,
                                       WeightLayout layout = WeightLayout::kPyTorch);

// Any flat buffer laid over the parameters (the parameters themselves, an optimizer's state
// buffer) as one named tensor per parameter, in `layout`.
std::vector<NamedTensor> named_parameter_values(Trainer& trainer, std::span<const float> flat,
                                                WeightLayout layout);
// The reverse: `tensors` (every parameter's, with its shape and finite values, and nothing else)
// as a flat buffer; otherwise throws CheckpointError naming `origin` and the tensor.
std::vector<float> parameter_values(Trainer& trainer, std::vector<NamedTensor> tensors,
                                    const std::string& origin, WeightLayout layout);

// Collective: loads the tensors that `on_rank0` returns on rank 0 into every rank's model (rank
// 0's are broadcast, so every replica holds the same bits). Every tensor of the model must be
// there with its shape and finite values, and nothing else; otherwise every rank throws
// CheckpointError naming `origin` and the tensor.
void load_named_weights(Communicator& comm, Trainer& trainer,
                        const std::function<std::vector<NamedTensor>()>& on_rank0,
                        const std::string& origin, WeightLayout layout = WeightLayout::kPyTorch);

}  // namespace ddp
