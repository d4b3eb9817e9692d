#pragma once
// NumPy arrays in and out of the Python module (Note [Python API]).

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <vector>

#include "api/keras.h"

namespace ddp::python {

namespace py = pybind11;

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using LabelArray = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

// Samples as the C++ API takes them: the first axis counts samples, the rest is their shape.
// A y of a floating-point dtype holds real-valued targets (regression), (samples) or (samples,
// targets); any other dtype class indices, (samples), or 0/1 labels, (samples, labels) (multi-
// label, binary_crossentropy). sample_weight: Keras', one number per sample. Errors name `call`.
keras::Arrays arrays(const FloatArray& x, const std::optional<py::array>& y,
                     const std::string& call,
                     const std::optional<FloatArray>& sample_weight = std::nullopt);

// `values` as a float32 array of `shape`.
FloatArray array_of(const std::vector<float>& values, std::vector<py::ssize_t> shape);

}  // namespace ddp::python
