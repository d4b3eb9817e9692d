#!/usr/bin/env python3
"""The seed example in Keras (TensorFlow from PyPI), for benchmarks/compare_pytorch.py.
  keras_seed.py                    the example as written: 10 epochs of fit() with its default
                                   output and threading (compare_pytorch.py times the process)
  keras_seed.py --throughput 30    same model and data, one thread, steady-state samples/s of
                                   the epochs after the first two, as one JSON object"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up notes off stdout

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402


def seed_model():
    model = keras.Sequential([
        keras.layers.Dense(64, activation="relu", input_shape=(10,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def seed_data():
    x_train = np.random.random((1000, 10))
    y_train = np.random.randint(10, size=(1000,))
    return x_train, y_train


class EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def throughput(epochs):
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = seed_model()
    x_train, y_train = seed_data()
    times = EpochTimes()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0, callbacks=[times])
    steady = times.seconds[2:]  # the first epochs trace and compile the step function
    print(json.dumps({"framework": f"keras {keras.__version__} (tensorflow {tf.__version__})",
                      "workload": "w1", "threads": 1,
                      "samples_per_sec": len(x_train) * len(steady) / sum(steady)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--throughput", type=int, metavar="EPOCHS")
    args = p.parse_args()
    if args.throughput:
        throughput(max(args.throughput, 3))
    else:
        model = seed_model()
        x_train, y_train = seed_data()
        model.fit(x_train, y_train, epochs=10, batch_size=32)


if __name__ == "__main__":
    sys.exit(main())
