#pragma once
// The windows of the image and sequence layers (Note [image layout]), from their specs and the
// shapes of their inputs: each names the layer in a ConfigError when its input is not of the shape
// it needs or the window does not fit.

#include "backend/window2d.h"
#include "core/shape.h"
#include "nn/model_builder.h"

namespace ddp {

// Names the layer when its input is not (steps, channels) (`one_row`) or an image.
void require_image_or_steps(const LayerSpec& spec, const Shape& shape, bool one_row);
// The window of a conv2d or pooling layer over an image input (`global`: the whole image).
Window2d image_window(const LayerSpec& spec, const Shape& shape, bool global = false);
// A conv1d's or 1D pooling's window over (steps, channels), an image of one row.
Window2d steps_window(const LayerSpec& spec, const Shape& shape);
// Note [transposed convolution]: the view of a conv2d_transpose (an image input) or
// conv1d_transpose ((steps, channels)), a convolution over its output with its filters as that
// convolution's channels.
Window2d transposed_view(const LayerSpec& spec, const Shape& shape);
// Note [upsampling]: the pooling whose windows are the blocks an up_sampling2d (an image input)
// or up_sampling1d ((steps, channels)) repeats each input pixel over.
Window2d upsampling_blocks(const LayerSpec& spec, const Shape& shape);
// Note [zero padding]: the 1x1 pooling whose padding a zero_padding2d (an image input) or
// zero_padding1d ((steps, channels)) adds.
Window2d padded_window(const LayerSpec& spec, const Shape& shape);

}  // namespace ddp
