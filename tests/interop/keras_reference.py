#!/usr/bin/env python3
"""What the unit tests expect of ddp-trainer where it follows Keras, asked of Keras 3 itself:
Note [monitored values]: the epoch-by-epoch cases of tests/unit/test_early_stopping.cpp and
tests/unit/test_reduce_lr_on_plateau.cpp replayed through keras.callbacks.EarlyStopping and
ReduceLROnPlateau; Note [augmentation]: test_augment.cpp's shifted rows through
keras.ops.image.affine_transform (interpolation nearest, each fill mode), its zoomed rows and
rotated images through keras.layers.RandomZoom and RandomRotation with ranges of one value, its
sub-pixel shifts through keras.layers.RandomTranslation, its contrast and brightness changes
through RandomContrast and RandomBrightness
(Note [affine resampling]: the TensorFlow backend, Keras' default); the learning-rate schedules
of test_optimizers.cpp through keras.optimizers.schedules. Runs where a Python
with Keras 3 is found (benchmarks/setup_frameworks.sh makes one); ctest registers it only
there."""

import math
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import keras  # noqa: E402

NAN = math.nan
INF = math.inf


def model(monitor):
    """A built model whose metrics tell Keras' auto mode the direction of `monitor`."""
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    if "mae" in monitor:
        m.compile(keras.optimizers.SGD(1.0), "mse", metrics=["mae"])
        m.fit(np.zeros((4, 2)), np.zeros((4, 2)), epochs=1, verbose=0)
    else:
        m.compile(keras.optimizers.SGD(1.0), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
        m.fit(np.zeros((4, 2)), np.zeros(4), epochs=1, verbose=0)
    return m


def early_stopping(monitor, patience, values, min_delta=0.0, mode="auto", baseline=None,
                   start_from_epoch=0):
    """Which epochs became the best (until the stop), and the epoch it stopped after (-1)."""
    m = model(monitor)
    cb = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta,
                                       mode=mode, baseline=baseline,
                                       start_from_epoch=start_from_epoch)
    cb.set_model(m)
    m.stop_training = False
    cb.on_train_begin()
    improved = []
    for epoch, value in enumerate(values):
        best_before = cb.best
        cb.on_epoch_end(epoch, {monitor: value})
        improved.append(cb.best is not best_before)
        if m.stop_training:
            return improved, epoch
    return improved, -1


def reduce_on_plateau(monitor, patience, factor, values, min_delta=1e-4, cooldown=0, min_lr=0.0):
    """Which epochs lowered the rate from 1, and the rate after."""
    m = model(monitor)
    m.optimizer.learning_rate = 1.0
    cb = keras.callbacks.ReduceLROnPlateau(monitor=monitor, patience=patience, factor=factor,
                                           min_delta=min_delta, cooldown=cooldown, min_lr=min_lr)
    cb.set_model(m)
    cb.on_train_begin()
    reduced = []
    for epoch, value in enumerate(values):
        before = float(m.optimizer.learning_rate)
        cb.on_epoch_end(epoch, {monitor: value})
        reduced.append(float(m.optimizer.learning_rate) != before)
    return reduced, float(m.optimizer.learning_rate)


# (call, what the unit tests expect of ddp-trainer), in the unit tests' order.
CASES = [
    (lambda: early_stopping("val_loss", 2, [1.0, 0.9, 0.95, 0.91, 0.5]),
     ([True, True, False, False], 3)),
    (lambda: early_stopping("loss", 0, [1.0, 0.96, 0.5], min_delta=0.05), ([True, False], 1)),
    (lambda: early_stopping("loss", 0, [NAN, 1.0, 0.5]), ([True, False], 1)),
    (lambda: early_stopping("val_accuracy", 1, [0.5, 0.6, 0.6, 0.7]), ([True, True, False], 2)),
    (lambda: early_stopping("mae", 1, [0.5, 0.6]), ([True, False], 1)),
    (lambda: early_stopping("loss", 1, [0.5, 0.6, 0.4], mode="max"), ([True, True, False], 2)),
    (lambda: early_stopping("loss", 10, [3.0, 2.0, 4.0, 1.0]), ([True, True, False, True], -1)),
    # test_early_stopping.cpp's BaselineAndStartFromEpochFollowKeras.
    (lambda: early_stopping("loss", 2, [1.0, 0.9, 0.95, 0.94], baseline=0.5),
     ([True, True, False], 2)),
    (lambda: early_stopping("loss", 2, [1.0, 0.9, 0.95, 0.94]), ([True, True, False, False], 3)),
    (lambda: early_stopping("loss", 2, [1.0, 0.9, 0.8, 0.7, 0.6], baseline=0.5), ([True] * 5, -1)),
    (lambda: early_stopping("loss", 2, [1.0, 0.4, 0.45, 0.46, 0.3], baseline=0.5),
     ([True, True, False, False], 3)),
    (lambda: early_stopping("loss", 0, [1.0, 0.5, 2.0, 3.0, 0.1], start_from_epoch=2),
     ([False, False, True, False], 3)),
    (lambda: reduce_on_plateau("val_loss", 2, 0.5, [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6]),
     ([False, False, False, True, False, False, False], 0.5)),
    (lambda: reduce_on_plateau("loss", 1, 0.5, [1.0, 0.99995]), ([False, True], 0.5)),
    (lambda: reduce_on_plateau("loss", 1, 0.5, [1, 2, 3, 4, 5, 6], cooldown=2),
     ([False, True, False, True, False, True], 0.125)),
    (lambda: reduce_on_plateau("loss", 0, 0.1, [1, 2, 3, 4], min_lr=0.05),
     ([False, True, True, False], 0.05)),
    (lambda: reduce_on_plateau("val_accuracy", 1, 0.5, [0.5, 0.6, 0.6]), ([False, False, True], 0.5)),
    (lambda: reduce_on_plateau("loss", 1, 0.5, [NAN, 1.0, NAN]), ([False, True, True], 0.25)),
]


def shifted_row(fill_mode, shift):
    """The row 1 2 3 4 shifted right by `shift` pixels (left if negative), filled with 9."""
    image = np.array([1, 2, 3, 4], dtype="float32").reshape(1, 1, 4, 1)
    # The transform maps output to input coordinates: x_in = x - shift.
    transform = np.array([[1, 0, -shift, 0, 1, 0, 0, 0]], dtype="float32")
    out = keras.ops.image.affine_transform(image, transform, interpolation="nearest",
                                           fill_mode=fill_mode, fill_value=9.0)
    return np.asarray(out).reshape(-1).tolist(), 0.0


# test_augment.cpp's ShiftsFillAsKerasFillModes, unflipped.
CASES += [
    (lambda: shifted_row("reflect", 2), ([2, 1, 1, 2], 0.0)),
    (lambda: shifted_row("reflect", -1), ([2, 3, 4, 4], 0.0)),
    (lambda: shifted_row("constant", 1), ([9, 1, 2, 3], 0.0)),
    (lambda: shifted_row("constant", -2), ([3, 4, 9, 9], 0.0)),
    (lambda: shifted_row("nearest", 2), ([1, 1, 1, 2], 0.0)),
    (lambda: shifted_row("wrap", 1), ([4, 1, 2, 3], 0.0)),
    (lambda: shifted_row("wrap", 3), ([4, 3, 4, 1], 0.0)),
    (lambda: shifted_row("wrap", -3), ([4, 1, 2, 1], 0.0)),
    (lambda: shifted_row("reflect", 3), ([3, 2, 1, 1], 0.0)),
]


def zoomed_row(fill_mode, interpolation, zoom):
    """The row 1 2 3 4 through RandomZoom with the width zoom `zoom` (the height's 1)."""
    image = np.array([1, 2, 3, 4], dtype="float32").reshape(1, 1, 4, 1)
    layer = keras.layers.RandomZoom((0.0, 0.0), (zoom - 1, zoom - 1), fill_mode=fill_mode,
                                    interpolation=interpolation, fill_value=9.0)
    return np.asarray(layer(image, training=True)).reshape(-1).tolist(), 0.0


def rotated(turns):
    """Channel 0 of the 3 x 3 image 0..8 through RandomRotation by `turns`, to 5 decimals."""
    image = np.arange(9, dtype="float32").reshape(1, 3, 3, 1)
    layer = keras.layers.RandomRotation((turns, turns), fill_mode="constant", fill_value=-1.0)
    out = np.asarray(layer(image, training=True)).reshape(-1)
    return [round(float(v), 5) + 0.0 for v in out], 0.0


# test_augment.cpp's ZoomsResampleAsKerasFillModesAndInterpolationsSay and
# RotationTurnsAboutTheCentre.
CASES += [
    (lambda: zoomed_row("constant", "bilinear", 2), ([9, 1.5, 3.5, 9], 0.0)),
    (lambda: zoomed_row("reflect", "bilinear", 2), ([1.5, 1.5, 3.5, 3.5], 0.0)),
    (lambda: zoomed_row("nearest", "bilinear", 2), ([1, 1.5, 3.5, 4], 0.0)),
    (lambda: zoomed_row("wrap", "bilinear", 2), ([3.5, 1.5, 3.5, 1.5], 0.0)),
    (lambda: zoomed_row("constant", "nearest", 2), ([9, 2, 4, 9], 0.0)),
    (lambda: zoomed_row("reflect", "nearest", 2), ([2, 2, 4, 4], 0.0)),
    (lambda: zoomed_row("wrap", "nearest", 2), ([4, 2, 4, 2], 0.0)),
    (lambda: zoomed_row("constant", "bilinear", 0.5), ([1.75, 2.25, 2.75, 3.25], 0.0)),
    (lambda: zoomed_row("constant", "nearest", 0.5), ([2, 2, 3, 3], 0.0)),
    (lambda: rotated(0.25), ([2, 5, 8, 1, 4, 7, 0, 3, 6], 0.0)),
    (lambda: rotated(-0.5), ([8, 7, 6, 5, 4, 3, 2, 1, 0], 0.0)),
]


def translated(fill_mode, interpolation, rows):
    """The row 1 2 3 4 (a column where `rows`) through RandomTranslation by half a pixel right
    (down): a factor range of one value, 0.125 of 4 pixels."""
    shape = (1, 4, 1, 1) if rows else (1, 1, 4, 1)
    image = np.array([1, 2, 3, 4], dtype="float32").reshape(shape)
    factors = ((0.125, 0.125), (0.0, 0.0))
    layer = keras.layers.RandomTranslation(*(factors if rows else factors[::-1]),
                                           fill_mode=fill_mode, interpolation=interpolation,
                                           fill_value=9.0)
    return np.asarray(layer(image, training=True)).reshape(-1).tolist(), 0.0


# test_augment.cpp's SubPixelShiftsResampleAsKerasRandomTranslation.
CASES += [
    (lambda f=fill, i=interpolation, r=rows: translated(f, i, r), want)
    for rows in (False, True)
    for fill, interpolation, want in (("constant", "bilinear", ([5, 1.5, 2.5, 3.5], 0.0)),
                                      ("constant", "nearest", ([9, 2, 3, 4], 0.0)),
                                      ("nearest", "bilinear", ([1, 1.5, 2.5, 3.5], 0.0)))
]


def adjusted(layer):
    """The 2 x 2 image of two channels 0 10 20 30 and 100 100 100 104 through `layer`."""
    image = np.array([0, 100, 10, 100, 20, 100, 30, 104], dtype="float32").reshape(1, 2, 2, 2)
    return np.asarray(layer(image, training=True)).reshape(-1).tolist(), 0.0


# test_augment.cpp's ContrastAndBrightnessAsKerasComputeThem: RandomContrast's factor (-0.5, 0.5)
# draws from [1.5, 1.5].
CASES += [
    (lambda: adjusted(keras.layers.RandomContrast((-0.5, 0.5), value_range=(0, 110))),
     ([0, 99.5, 7.5, 99.5, 22.5, 99.5, 37.5, 105.5], 0.0)),
    (lambda: adjusted(keras.layers.RandomBrightness((0.1, 0.1))),
     ([25.5, 125.5, 35.5, 125.5, 45.5, 125.5, 55.5, 129.5], 0.0)),
    (lambda: adjusted(keras.layers.RandomBrightness((0.5, 0.5), value_range=(0, 110))),
     ([55, 110, 65, 110, 75, 110, 85, 110], 0.0)),
]


def rate(schedule, step):
    """A Keras LearningRateSchedule's rate at `step` (Keras computes it in float32)."""
    return [], float(schedule(step))


S = keras.optimizers.schedules
# test_optimizers.cpp's LrSchedule tests of Keras' schedules (the step counts earlier steps).
CASES += [
    (lambda: rate(S.ExponentialDecay(0.1, 10, 0.5), 5), ([], 0.1 * math.sqrt(0.5))),
    (lambda: rate(S.ExponentialDecay(0.1, 10, 0.5), 20), ([], 0.025)),
    (lambda: rate(S.ExponentialDecay(0.1, 10, 0.5, staircase=True), 19), ([], 0.05)),
    (lambda: rate(S.InverseTimeDecay(0.1, 10, 0.5), 5), ([], 0.08)),
    (lambda: rate(S.InverseTimeDecay(0.1, 10, 0.5, staircase=True), 15), ([], 0.1 / 1.5)),
    (lambda: rate(S.PolynomialDecay(0.1, 10, 0.01, power=2), 5), ([], 0.0325)),
    (lambda: rate(S.PolynomialDecay(0.1, 10, 0.01, power=2), 50), ([], 0.01)),
    (lambda: rate(S.PiecewiseConstantDecay([10, 20], [0.1, 0.05, 0.01]), 10), ([], 0.1)),
    (lambda: rate(S.PiecewiseConstantDecay([10, 20], [0.1, 0.05, 0.01]), 11), ([], 0.05)),
    (lambda: rate(S.PiecewiseConstantDecay([10, 20], [0.1, 0.05, 0.01]), 21), ([], 0.01)),
    (lambda: rate(S.CosineDecay(0.1, 10, alpha=0.1), 5), ([], 0.055)),
    (lambda: rate(S.CosineDecay(0.1, 10, alpha=0.1), 30), ([], 0.01)),
]


def main():
    print("keras", keras.__version__)
    failed = 0
    for i, (call, want) in enumerate(CASES):
        got = call()
        # Keras keeps the rate in float32: 0.05 comes back as 0.0500000007.
        same = got[0] == want[0] and math.isclose(got[1], want[1], rel_tol=1e-7)
        print(f"{'ok  ' if same else 'FAIL'} case {i}: keras {got}, ddp-trainer's tests {want}")
        failed += not same
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
