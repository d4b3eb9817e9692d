#pragma once
// Note [PyTorch layout]: ddp-trainer's images are NHWC (Note [image layout]), PyTorch's NCHW. Two
// kinds of parameter are therefore stored in another order than PyTorch's: a convolution's
// weight, (filters, kernel_h, kernel_w, channels) here and (filters, channels, kernel_h, kernel_w)
// in nn.Conv2d, and the weight of the first Dense layer after an image is flattened, whose inputs
// come in (h, w, c) order here and (c, h, w) after PyTorch's nn.Flatten. Both are the 4-d view
// (rows, h, w, c) of the tensor with its last three axes reordered to (c, h, w). safetensors
// exports and --init-from imports convert, so the tensors fit an equivalent PyTorch model as
// they are.

#include <span>
#include <vector>

#include "nn/sequential.h"

namespace ddp {

// The tensor's shape in PyTorch.
Shape torch_shape(const ParamEntry& entry);
// The tensor's values reordered into PyTorch's layout, and back.
std::vector<float> to_torch_layout(const ParamEntry& entry, std::span<const float> ours);
std::vector<float> from_torch_layout(const ParamEntry& entry, std::span<const float> theirs);

}  // namespace ddp
