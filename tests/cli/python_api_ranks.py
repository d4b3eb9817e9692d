"""What each rank of run_python_api_scenario.py's jobs runs (the script runs itself with one of
its modes under mpiexec, or alone): each trains through the ddp_trainer module and writes what
the scenario checks to out.<rank>, or prints it."""

import json


def data():
    """Four classes of ten features, the same on every rank (a fixed seed)."""
    import numpy as np
    rng = np.random.default_rng(0)
    w = rng.normal(size=(10, 4))
    x = rng.normal(size=(600, 10)).astype(np.float32)
    y = np.argmax(x @ w, axis=1).astype(np.int32)
    return x[:500], y[:500], x[500:], y[500:]


# The child's model lives on until the interpreter exits, as a script's global model does: the
# module's exit handler must free it before MPI ends.
KEEP = []


def child(out):
    """One rank's part: train, train on, train on batches, predict, evaluate; this rank's results
    to out.<rank>."""
    import ddp_trainer as ddp
    x, y, xv, yv = data()
    model = ddp.Sequential([ddp.Dense(32, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
    model.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    first = model.fit(x, y, epochs=3, batch_size=64, seed=7, verbose=False,
                      validation_data=(xv, yv))
    second = model.fit(x, y, epochs=1, batch_size=64, seed=7, verbose=False)
    # Keras' train_on_batch: batches of 33, which 2 ranks split 17 and 16.
    on_batch = [model.train_on_batch(x[i:i + 33], y[i:i + 33]) for i in (0, 33, 66)]
    model.save_weights(out + ".safetensors")
    result = {"first": first, "second": second, "on_batch": on_batch,
              "predict": model.predict(xv).tolist(),
              "evaluate": model.evaluate(xv, yv, return_dict=True),
              "weights": {k: v.tolist() for k, v in model.get_weights().items()},
              "shapes": {k: list(v.shape) for k, v in model.get_weights().items()}}
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump(result, f)
    KEEP.append(model)


def one_rank_fails():
    """Rank 1 raises after a fit while rank 0 goes on to a collective (evaluate)."""
    import ddp_trainer as ddp
    x, y, xv, yv = data()
    model = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    model.compile(ddp.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x, y, verbose=False)
    if ddp.rank() == 1:
        raise RuntimeError("rank 1 fails on its own")
    model.evaluate(xv, yv)


def regression(out):
    """A float y: real-valued targets, (samples, 2), fitted by a linear model on every rank."""
    import numpy as np
    import ddp_trainer as ddp
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 3)).astype(np.float32)
    y = x @ np.array([[1.5, 0.25], [-2.0, 1.0], [0.5, -0.75]]) + [0.25, -1.0]  # float64
    y += 0.01 * rng.normal(size=y.shape)  # noise: least squares, not an exact fit
    model = ddp.Sequential([ddp.Dense(2)], input_shape=[3])
    model.compile(ddp.SGD(0.1), "mean_squared_error", ["mae"])
    history = model.fit(x, y, epochs=40, batch_size=32, verbose=False, validation_data=(x, y))
    w = model.get_weights()
    # use_bias=False (Note [no bias]): targets without the intercept, fitted without a bias.
    y_origin = y - [0.25, -1.0]
    origin = ddp.Sequential([ddp.Dense(2, use_bias=False)], input_shape=[3])
    origin.compile(ddp.SGD(0.1), "mean_squared_error")
    origin.fit(x, y_origin, epochs=40, batch_size=32, verbose=False)
    through_origin = {k: v.tolist() for k, v in origin.get_weights().items()}
    through_origin["y"] = y_origin.tolist()
    split = {}
    for name, kwargs in (("split", {"validation_split": 0.3}),
                         ("apart", {"validation_data": (x[179:], y[179:])})):  # floor(256 x 0.7)
        m = ddp.Sequential([ddp.Dense(2)], input_shape=[3])
        m.compile(ddp.SGD(0.1), "mean_squared_error")
        data = (x, y) if name == "split" else (x[:179], y[:179])
        split[name] = m.fit(*data, epochs=2, batch_size=32, verbose=False, **kwargs)
    # A target per step: a Dense layer at each of 4 steps of (4, 3) sequences fits the same least
    # squares over all (sample, step) rows, and predict gives (samples, 4, 2).
    per_step = ddp.Sequential([ddp.Dense(2)], input_shape=[4, 3])
    per_step.compile(ddp.SGD(0.1), "mean_squared_error")
    per_step.fit(x.reshape(64, 4, 3), y.reshape(64, 4, 2), epochs=40, batch_size=8, verbose=False)
    split["per_step"] = {"weight": per_step.get_weights()["layers.0.weight"].tolist(),
                         "predicted": list(per_step.predict(x.reshape(64, 4, 3)).shape)}
    # A 2-D integer y: several 0/1 labels per sample (binary_crossentropy).
    multi = ddp.Sequential([ddp.Dense(8, "relu"), ddp.Dense(2, "sigmoid")], input_shape=[3])
    multi.compile(ddp.Adam(0.05), "binary_crossentropy", ["binary_accuracy"])
    labels = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0], axis=1).astype(np.int32)
    split["multi_label"] = multi.fit(x, labels, epochs=5, batch_size=32, verbose=False)
    # class_weight: every class weighing 2 is SGD at twice the rate, with twice the loss and the
    # same validation loss (Note [class weights]).
    classes = (x[:, 0] > 0).astype(np.int32)
    # ({0: 1.0}: row weights of 1, which change no bit.)
    for name, rate, weights in (("ones", 0.2, {0: 1.0}), ("twos", 0.1, {0: 2.0, 1: 2.0})):
        m = ddp.Sequential([ddp.Dense(2, "softmax")], input_shape=[3])
        m.compile(ddp.SGD(rate), "sparse_categorical_crossentropy")
        split[name] = m.fit(x, classes, epochs=2, batch_size=32, verbose=False,
                            validation_data=(x, classes), class_weight=weights)
        split[name]["weights"] = m.get_weights()["layers.0.weight"].tolist()
    # sample_weight 2 everywhere is SGD at twice the rate with twice the loss; (x, y, w) weighs
    # val_loss, evaluate(sample_weight=) its loss (Note [sample weights]).
    halves, twos = np.full(len(x), 0.5, np.float32), np.full(len(x), 2, np.float32)
    for name, rate, weights, val in (("plain", 0.2, None, (x, classes)),
                                     ("sample_twos", 0.1, twos, (x, classes, halves))):
        m = ddp.Sequential([ddp.Dense(2, "softmax")], input_shape=[3])
        m.compile(ddp.SGD(rate), "sparse_categorical_crossentropy")
        split[name] = m.fit(x, classes, epochs=2, batch_size=32, verbose=False,
                            validation_data=val, sample_weight=weights)
        split[name]["weights"] = m.get_weights()["layers.0.weight"].tolist()
        split[name]["evaluated"] = m.evaluate(x, classes, sample_weight=halves,
                                              return_dict=True)["loss"]
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump({"history": history, "split": split, "weight": w["layers.0.weight"].tolist(),
                   "through_origin": through_origin,
                   "bias": w["layers.0.bias"].tolist(), "x": x.tolist(), "y": y.tolist()}, f)


class KerasLikeCallback:
    """As keras.callbacks.Callback: batch hooks that do nothing but call Keras 2's names (here
    also recording that they ran, which they must not: a subclass's own hooks are called)."""
    def on_train_batch_end(self, batch, logs):
        self.calls.append(["inherited", batch])
        self.on_batch_end(batch, logs)

    def on_batch_end(self, batch, logs):
        pass


KerasLikeCallback.__module__ = "keras.src.callbacks.callback"


class Recorder(KerasLikeCallback):
    """A Keras-style callback: records each epoch's logs and the order of the calls, the batches
    by Keras 3's on_train_batch_begin and Keras 2's on_batch_end; rank 0 stops after the second
    epoch."""
    def __init__(self, rank):
        self.rank, self.seen, self.calls = rank, [], []

    def on_train_begin(self, logs):
        self.calls.append(["train_begin", logs])

    def on_epoch_begin(self, epoch, logs):
        self.calls.append(["epoch_begin", epoch, logs])

    def on_train_batch_begin(self, batch, logs):
        self.calls.append(["batch_begin", batch, logs])

    def on_batch_end(self, batch, logs):
        self.calls.append(["batch_end", batch])

    def on_train_end(self, logs):
        self.calls.append(["train_end", logs])

    def on_epoch_end(self, epoch, logs):
        self.calls.append(["epoch_end", epoch])
        self.seen.append([epoch, logs])
        # The model's collectives work inside the fit (every rank runs its callbacks).
        self.weights = {k: v.tolist() for k, v in self.model.get_weights().items()}
        self.predicted = self.model.predict(data()[2][:3]).tolist()
        if epoch == 1 and self.rank == 0:
            self.model.stop_training = True


class StopMidEpoch:
    """Keras 3's model.stop_training from a batch hook: rank 0 asks after the third batch of the
    second epoch (rank 1's ask after every first batch must not count), or in on_train_begin."""
    def __init__(self, rank, at_train_begin=False):
        self.rank, self.at_train_begin, self.batches = rank, at_train_begin, []

    def on_train_begin(self, logs):
        self.model.stop_training = self.at_train_begin and self.rank == 0

    def on_epoch_begin(self, epoch, logs):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs):
        self.batches.append([self.epoch, batch])
        if (self.rank == 0 and [self.epoch, batch] == [1, 2]) or (self.rank == 1 and batch == 0):
            self.model.stop_training = True


def callbacks(out):
    import ddp_trainer as ddp
    x, y, xv, yv = data()
    model = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    model.compile(ddp.SGD(0.1), "sparse_categorical_crossentropy", ["accuracy"])
    model.summary()  # printed by rank 0 alone
    recorder = Recorder(ddp.rank())

    class BatchLogs:
        """A plain object with Keras 3's on_train_batch_end: each batch's logs."""
        logs = []

        def on_train_batch_end(self, batch, logs):
            self.logs.append([batch, logs])
    batch_logs = BatchLogs()
    history = model.fit(x, y, epochs=5, verbose=False, validation_data=(xv, yv),
                        callbacks=[recorder, ddp.EarlyStopping("val_loss", patience=3),
                                   batch_logs])
    result = {"history": history, "seen": recorder.seen, "calls": recorder.calls,
              "batch_logs": batch_logs.logs,
              "same_model": recorder.model is model,
              "last_epoch": [recorder.weights, recorder.predicted],
              "after_fit": [{k: v.tolist() for k, v in model.get_weights().items()},
                            model.predict(xv[:3]).tolist()]}
    stopper = StopMidEpoch(ddp.rank())
    stopped = model.fit(x, y, epochs=5, verbose=False, validation_data=(xv, yv),
                        callbacks=[stopper])
    at_start = StopMidEpoch(ddp.rank(), at_train_begin=True)
    result["stopped"] = {"history": stopped, "batches": stopper.batches,
                         "flag": model.stop_training,
                         "at_start": [model.fit(x, y, epochs=3, verbose=False,
                                                callbacks=[at_start]), at_start.batches]}
    try:
        model.fit(x, y, callbacks=[42])
    except ddp.ConfigError as e:
        result["not_a_callback"] = str(e)
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump(result, f)


class HalvingSchedule:
    """As Keras' LearningRateScheduler: reads model.optimizer.learning_rate before each epoch and
    sets the epoch's, 0.2 and then half the last; rank 1 asks for ten times that, which must not
    count (rank 0's rate trains every rank)."""
    def __init__(self, rank):
        self.rank, self.read = rank, []

    def on_epoch_begin(self, epoch, logs):
        rate = float(self.model.optimizer.learning_rate)
        self.read.append(rate)
        self.model.optimizer.learning_rate = (0.2 if epoch == 0 else rate / 2) * (
            10 if self.rank == 1 else 1)


def learning_rate(out):
    import ddp_trainer as ddp
    x, y, _, _ = data()
    model = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    model.compile(ddp.SGD(0.1), "sparse_categorical_crossentropy")
    schedule = HalvingSchedule(ddp.rank())
    history = model.fit(x, y, epochs=3, batch_size=500, verbose=False, callbacks=[schedule])
    # The same three steps of the whole set with their rates compiled in (SGD keeps no state).
    reference = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    for rate in (0.2, 0.1, 0.05):
        reference.compile(ddp.SGD(rate), "sparse_categorical_crossentropy")
        reference.fit(x, y, batch_size=500, verbose=False)
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump({"history": history, "read": schedule.read,
                   "after": model.optimizer.learning_rate,
                   "weights": model.get_weights()["layers.0.weight"].tolist(),
                   "reference": reference.get_weights()["layers.0.weight"].tolist()}, f)


def backup(out, mode):
    """Note [run checkpoints] from Python: 'die' ends the process of rank 0 as the third of four
    epochs begins (the second's checkpoint written), 'resume' fits again with the same
    BackupAndRestore, 'whole' fits without one; each writes its history and weights."""
    import os
    import numpy as np
    import ddp_trainer as ddp
    x, y, _, _ = data()
    model = ddp.Sequential([ddp.Dense(16, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
    model.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])

    class Die:
        def on_epoch_begin(self, epoch, logs):
            if epoch == 2 and ddp.rank() == 0:
                os._exit(3)  # as a node that fails: no cleanup, no exception
    callbacks = [] if mode == "whole" else [ddp.BackupAndRestore(out + ".backup")]
    history = model.fit(x, y, batch_size=50, epochs=4, verbose=0,
                        callbacks=callbacks + ([Die()] if mode == "die" else []))
    weights = np.concatenate([v.ravel() for v in model.get_weights().values()])
    with open(f"{out}.{mode}.{ddp.rank()}", "w") as f:
        json.dump({"history": history, "weights": weights.tolist()}, f)


def fit_memory():
    """How much a fit on 64 MB of features raises this process's peak memory (one rank)."""
    import resource
    import numpy as np
    import ddp_trainer as ddp
    # float32 from the start: a float64 draw would set the peak before the fit does.
    x = np.random.default_rng(0).standard_normal((16384, 1024), dtype=np.float32)
    y = (np.arange(16384) % 4).astype(np.int32)
    model = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[1024])
    model.compile(ddp.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x[:64], y[:64], verbose=False)  # MPI's and the library's own start-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.fit(x, y, batch_size=1024, verbose=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth": (after - before) * 1024, "features": x.nbytes}))


def errors():
    """Mistakes in a world of one: (exception class name, message) per case, as JSON."""
    import numpy as np
    import ddp_trainer as ddp
    x, y, _, _ = data()
    cases = []

    def case(call):
        try:
            call()
            cases.append(["none", ""])
        except Exception as e:  # noqa: BLE001 (the class is what is checked)
            cases.append([type(e).__name__, str(e)])

    bad = ddp.Sequential([ddp.Dense(0, "relu")], input_shape=[10])
    bad.compile(ddp.Adam(), "sparse_categorical_crossentropy")
    case(lambda: bad.fit(x, y, verbose=False))
    shapeless = ddp.Sequential([ddp.Dense(4, "softmax")])  # nothing to build it from
    case(lambda: shapeless.predict(x))
    model = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    model.compile(ddp.SGD(0.1), "sparse_categorical_crossentropy")
    case(lambda: model.fit(x, y[:10], verbose=False))
    case(lambda: model.fit(x, y, verbose=False, set=["training.allreduce=carrier_pigeon"]))
    model.fit(x, y, verbose=False)
    case(lambda: model.set_weights({"layers.0.weight": np.zeros((4, 9), np.float32)}))
    case(lambda: model.load_weights("/nonexistent/w.safetensors"))
    case(lambda: model.evaluate(x, np.full(500, 7, np.int32)))
    case(lambda: model.fit(x, y, verbose=False, sample_weight=np.full(499, 1, np.float32)))
    negative = np.ones(500, np.float32)
    negative[3] = -2
    case(lambda: model.evaluate(x, y, sample_weight=negative))

    class Failing:
        def on_epoch_end(self, epoch, logs):
            raise KeyError("the callback's own error")
    case(lambda: model.fit(x, y, epochs=2, verbose=False, callbacks=[Failing()]))
    case(lambda: model.fit(x, y, verbose=False))  # still usable after it
    case(lambda: model.fit(x, y, verbose=False, callbacks=[HalvingSchedule(0)],
                           set=["optimizer.schedule.type=cosine"]))
    case(lambda: setattr(model.optimizer, "learning_rate", -0.5))
    case(lambda: ddp.Residual([ddp.Dense(4), 42]))
    print(json.dumps(cases))
