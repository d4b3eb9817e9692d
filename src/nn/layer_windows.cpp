#include "nn/layer_windows.h"

#include <string>

#include "core/error.h"
#include "nn/conv2d_transpose.h"

namespace ddp {
namespace {
// Note [dilated convolution]: a dilated window is named by its span, and said to be dilated.
std::string dilated(const Window2d& w) { return w.dilated() ? " (dilated)" : ""; }
}  // namespace

void require_image_or_steps(const LayerSpec& spec, const Shape& shape, bool one_row) {
  if (shape.rank() != (one_row ? 2u : 3u))
    throw ConfigError(spec.path + ": " + spec.type + " needs an input of " +
                      (one_row ? "(steps, channels)" : "(height, width, channels), an image,") +
                      " but gets " + shape.str());
}

Window2d image_window(const LayerSpec& spec, const Shape& shape, bool global) {
  if (shape.rank() != 3)
    throw ConfigError(spec.path + ": " + spec.type + " needs an image input (height, width, " +
                      "channels) but gets " + shape.str() +
                      (shape.rank() == 1 ? "; set model.input (e.g. [28, 28, 1]) and put it "
                                           "before any flatten or dense layer"
                                         : ""));
  if (global) return Window2d::make(shape[0], shape[1], shape[2], shape[0], shape[1], 1, 1, false);
  const Window2d w =
      Window2d::make(shape[0], shape[1], shape[2], spec.window[0], spec.window[1], spec.strides[0],
                     spec.strides[1], spec.same_padding, spec.dilation[0], spec.dilation[1]);
  if (w.out_h <= 0 || w.out_w <= 0)
    throw ConfigError(spec.path + ": a " + std::to_string(w.span_h()) + "x" +
                      std::to_string(w.span_w()) + " window" + dilated(w) + " does not fit the " +
                      std::to_string(shape[0]) + "x" + std::to_string(shape[1]) +
                      " input with padding valid (the output would be empty); use a smaller " +
                      "window or padding: same");
  return w;
}

Window2d steps_window(const LayerSpec& spec, const Shape& shape) {
  if (shape.rank() != 2)
    throw ConfigError(spec.path + ": " + spec.type + " needs an input of (steps, channels), an " +
                      "embedding's output, but gets " + shape.str());
  const Window2d w =
      spec.causal_padding
          ? Window2d::causal(shape[0], shape[1], spec.window[1], spec.strides[1], spec.dilation[1])
          : Window2d::make(1, shape[0], shape[1], 1, spec.window[1], 1, spec.strides[1],
                           spec.same_padding, 1, spec.dilation[1]);
  if (w.out_w <= 0)
    throw ConfigError(spec.path + ": a " + (spec.type == "conv1d" ? "kernel" : "pool") + " of " +
                      std::to_string(w.span_w()) + dilated(w) + " does not fit the " +
                      std::to_string(shape[0]) +
                      " steps with padding valid (the output would be empty); use a smaller " +
                      "kernel or padding: same");
  return w;
}

Window2d transposed_view(const LayerSpec& spec, const Shape& shape) {
  const bool one_row = spec.type == "conv1d_transpose";
  require_image_or_steps(spec, shape, one_row);
  const auto length = [&spec, &shape, one_row](int axis) {
    const int64_t in = one_row && axis == 0 ? 1 : shape[one_row ? 0 : axis];
    return Conv2DTranspose::output_length(in, spec.window[axis], spec.strides[axis],
                                          spec.same_padding, spec.output_padding[axis]);
  };
  const Window2d view =
      Window2d::make(length(0), length(1), spec.units, spec.window[0], spec.window[1],
                     spec.strides[0], spec.strides[1], spec.same_padding);
  if (view.out_h != (one_row ? 1 : shape[0]) || view.out_w != shape[one_row ? 0 : 1])
    throw ConfigError(spec.path + ".output_padding: the output of " + std::to_string(view.height) +
                      "x" + std::to_string(view.width) +
                      " does not convolve back to the input's size with padding same and this "
                      "kernel (Keras refuses it too); use another output_padding");
  return view;
}

Window2d upsampling_blocks(const LayerSpec& spec, const Shape& shape) {
  const bool one_row = spec.type == "up_sampling1d";
  require_image_or_steps(spec, shape, one_row);
  const int64_t height = one_row ? 1 : shape[0], width = shape[one_row ? 0 : 1];
  const int64_t channels = shape[one_row ? 1 : 2];
  return Window2d::make(height * spec.window[0], width * spec.window[1], channels, spec.window[0],
                        spec.window[1], spec.window[0], spec.window[1], false);
}

Window2d padded_window(const LayerSpec& spec, const Shape& shape) {
  const bool one_row = spec.type == "zero_padding1d";
  require_image_or_steps(spec, shape, one_row);
  const auto [top, bottom, left, right] = spec.zero_padding;
  Window2d w = Window2d::make(one_row ? 1 : shape[0], shape[one_row ? 0 : 1],
                              shape[one_row ? 1 : 2], 1, 1, 1, 1, false);
  w.pad_top = top;
  w.pad_left = left;
  w.out_h += top + bottom;
  w.out_w += left + right;
  return w;
}

}  // namespace ddp
