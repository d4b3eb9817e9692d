#!/usr/bin/env python3
"""The Python module ddp_trainer (Note [Python API]) under mpiexec -n 1 and -n 2: a model fitted
on NumPy arrays with validation, fitted again (it trains on), then predicted, evaluated and its
weights read and saved. Both ranks hold the same bits; 2 ranks train what 1 does within 1e-5; the
first fit's losses are ddp_train's on the same arrays as .npy files and the same config within
1e-6; an exception one rank does not catch ends the job instead of hanging it; mistakes raise
the module's exceptions with the library's one-line messages; fit holds one copy of the arrays;
a float y is a regression's targets (a linear model finds the least-squares weights), a 2-D
integer y 0/1 labels (multi-label); class_weight weighs the training loss only;
validation_split holds out the last samples, as validation_data of them would; a Python callback
sees every epoch's logs, can call the model's collectives (get_weights, predict) and stops the fit
on every rank when rank 0 sets model.stop_training;
summary() prints once.
  run_python_api_scenario.py --module-dir build/python --mpiexec mpiexec --ddp-train build/ddp_train"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from scenarios import mpi_env, run_scenarios

CONFIG = """seed: 7
data:
  train: {{type: npy, features: {x}, labels: {y}}}
  test: {{type: npy, features: {xv}, labels: {yv}}}
model:
  input: [10]
  layers:
    - {{type: dense, units: 32, activation: relu}}
    - {{type: dense, units: 4, activation: softmax}}
loss: sparse_categorical_crossentropy
metrics: [accuracy]
optimizer: {{type: adam, learning_rate: 0.01}}
training: {{epochs: 3, global_batch_size: 64, tail: partial}}
"""


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
    """One rank's part: train, train on, predict, evaluate; this rank's results to out.<rank>."""
    import ddp_trainer as ddp
    x, y, xv, yv = data()
    model = ddp.Sequential([ddp.Dense(32, "relu"), ddp.Dense(4, "softmax")], input_shape=[10])
    model.compile(ddp.Adam(0.01), "sparse_categorical_crossentropy", ["accuracy"])
    first = model.fit(x, y, epochs=3, batch_size=64, seed=7, verbose=False,
                      validation_data=(xv, yv))
    second = model.fit(x, y, epochs=1, batch_size=64, seed=7, verbose=False)
    model.save_weights(out + ".safetensors")
    result = {"first": first, "second": second, "predict": model.predict(xv).tolist(),
              "evaluate": model.evaluate(xv, yv),
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
    model.compile(ddp.SGD(0.1), "mean_squared_error")
    history = model.fit(x, y, epochs=40, batch_size=32, verbose=False, validation_data=(x, y))
    w = model.get_weights()
    split = {}
    for name, kwargs in (("split", {"validation_split": 0.3}),
                         ("apart", {"validation_data": (x[179:], y[179:])})):  # floor(256 x 0.7)
        m = ddp.Sequential([ddp.Dense(2)], input_shape=[3])
        m.compile(ddp.SGD(0.1), "mean_squared_error")
        data = (x, y) if name == "split" else (x[:179], y[:179])
        split[name] = m.fit(*data, epochs=2, batch_size=32, verbose=False, **kwargs)
    # A 2-D integer y: several 0/1 labels per sample (binary_crossentropy).
    multi = ddp.Sequential([ddp.Dense(8, "relu"), ddp.Dense(2, "sigmoid")], input_shape=[3])
    multi.compile(ddp.Adam(0.05), "binary_crossentropy", ["binary_accuracy"])
    labels = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0], axis=1).astype(np.int32)
    split["multi_label"] = multi.fit(x, labels, epochs=5, batch_size=32, verbose=False)
    # class_weight: every class weighing 2 is SGD at twice the rate, with twice the loss and the
    # same validation loss (Note [class weights]).
    classes = (x[:, 0] > 0).astype(np.int32)
    # ({0: 1.0}: weighted too, so that both train the categorical form: the same rounding.)
    for name, rate, weights in (("ones", 0.2, {0: 1.0}), ("twos", 0.1, {0: 2.0, 1: 2.0})):
        m = ddp.Sequential([ddp.Dense(2, "softmax")], input_shape=[3])
        m.compile(ddp.SGD(rate), "sparse_categorical_crossentropy")
        split[name] = m.fit(x, classes, epochs=2, batch_size=32, verbose=False,
                            validation_data=(x, classes), class_weight=weights)
        split[name]["weights"] = m.get_weights()["layers.0.weight"].tolist()
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump({"history": history, "split": split, "weight": w["layers.0.weight"].tolist(),
                   "bias": w["layers.0.bias"].tolist(), "x": x.tolist(), "y": y.tolist()}, f)


class Recorder:
    """A Keras-style callback: records each epoch's logs; rank 0 stops after the second epoch."""
    def __init__(self, rank):
        self.rank, self.seen = rank, []

    def on_epoch_end(self, epoch, logs):
        self.seen.append([epoch, logs])
        # The model's collectives work inside the fit (every rank runs its callbacks).
        self.weights = {k: v.tolist() for k, v in self.model.get_weights().items()}
        self.predicted = self.model.predict(data()[2][:3]).tolist()
        if epoch == 1 and self.rank == 0:
            self.model.stop_training = True


def callbacks(out):
    import ddp_trainer as ddp
    x, y, xv, yv = data()
    model = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    model.compile(ddp.SGD(0.1), "sparse_categorical_crossentropy", ["accuracy"])
    model.summary()  # printed by rank 0 alone
    recorder = Recorder(ddp.rank())
    history = model.fit(x, y, epochs=5, verbose=False, validation_data=(xv, yv),
                        callbacks=[recorder, ddp.EarlyStopping("val_loss", patience=3)])
    result = {"history": history, "seen": recorder.seen, "same_model": recorder.model is model,
              "last_epoch": [recorder.weights, recorder.predicted],
              "after_fit": [{k: v.tolist() for k, v in model.get_weights().items()},
                            model.predict(xv[:3]).tolist()]}
    try:
        model.fit(x, y, callbacks=[42])
    except ddp.ConfigError as e:
        result["not_a_callback"] = str(e)
    with open(f"{out}.{ddp.rank()}", "w") as f:
        json.dump(result, f)


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
    model = ddp.Sequential([ddp.Dense(4, "softmax")], input_shape=[10])
    case(lambda: model.predict(x))
    model.compile(ddp.SGD(0.1), "sparse_categorical_crossentropy")
    case(lambda: model.fit(x, y[:10], verbose=False))
    case(lambda: model.fit(x, y, verbose=False, set=["training.allreduce=carrier_pigeon"]))
    model.fit(x, y, verbose=False)
    case(lambda: model.set_weights({"layers.0.weight": np.zeros((4, 9), np.float32)}))
    case(lambda: model.load_weights("/nonexistent/w.safetensors"))
    case(lambda: model.evaluate(x, np.full(500, 7, np.int32)))

    class Failing:
        def on_epoch_end(self, epoch, logs):
            raise KeyError("the callback's own error")
    case(lambda: model.fit(x, y, epochs=2, verbose=False, callbacks=[Failing()]))
    case(lambda: model.fit(x, y, verbose=False))  # still usable after it
    print(json.dumps(cases))


class Scenarios:
    def __init__(self, args, tmp):
        self.a, self.tmp = args, tmp
        self.env = mpi_env(PYTHONPATH=args.module_dir)
        self.runs = {}

    def run(self, cmd, what):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=self.env)
        assert r.returncode == 0, f"{what}: exit {r.returncode}\n{r.stdout[-1500:]}{r.stderr[-1500:]}"
        return r.stdout

    def results(self, n):
        if n not in self.runs:
            out = os.path.join(self.tmp, f"np{n}")
            self.run([self.a.mpiexec, "-n", str(n), sys.executable, __file__, "--child", out],
                     f"the script under mpiexec -n {n}")
            self.runs[n] = [json.load(open(f"{out}.{r}")) for r in range(n)]
        return self.runs[n]

    def ranks_hold_the_same_bits(self):
        a, b = self.results(2)
        assert a["predict"] == b["predict"], "the 2 ranks predict differently"
        assert a["weights"] == b["weights"], "the 2 ranks hold different weights"
        assert a["shapes"] == {"layers.0.weight": [32, 10], "layers.0.bias": [32],
                               "layers.1.weight": [4, 32], "layers.1.bias": [4]}, a["shapes"]

    def two_ranks_train_what_one_does(self):
        import numpy as np
        one, two = self.results(1)[0], self.results(2)[0]
        pairs = [(one["predict"], two["predict"])]
        pairs += [(one["weights"][name], two["weights"][name]) for name in one["weights"]]
        pairs += [(one[key][k], two[key][k]) for key in ("first", "second") for k in one[key]]
        worst = max(float(np.max(np.abs(np.array(p) - np.array(q)))) for p, q in pairs)
        print(f"  2 ranks vs 1 (histories, weights, predictions): max difference {worst:.3g}")
        assert worst < 1e-5, f"2 ranks differ from 1 by {worst}"
        # It learns, and the second fit starts where the first ended.
        assert one["first"]["loss"][2] < one["first"]["loss"][0], one["first"]["loss"]
        assert one["second"]["loss"][0] < one["first"]["loss"][0], one["second"]["loss"]
        assert abs(one["evaluate"]["loss"] - one["first"]["val_loss"][2]) > 0  # after more training
        assert set(one["evaluate"]) == {"loss", "accuracy"}, one["evaluate"]

    def trains_what_ddp_train_does(self):
        import numpy as np
        x, y, xv, yv = data()
        paths = {k: os.path.join(self.tmp, f"{k}.npy") for k in ("x", "y", "xv", "yv")}
        for k, v in zip(paths, (x, y, xv, yv)):
            np.save(paths[k], v)
        config = os.path.join(self.tmp, "python_api.yaml")
        with open(config, "w") as f:
            f.write(CONFIG.format(**paths))
        run_dir = os.path.join(self.tmp, "run")
        self.run([self.a.mpiexec, "-n", "2", self.a.ddp_train, "--config", config, "--run-dir",
                  run_dir], "ddp_train on the same arrays")
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            cli = [json.loads(line) for line in f if line.strip()]
        api = self.results(2)[0]["first"]
        worst = max(max(abs(c["loss"] - p) for c, p in zip(cli, api["loss"])),
                    max(abs(c["val_loss"] - p) for c, p in zip(cli, api["val_loss"])))
        print(f"  Python API vs ddp_train, 3 epochs on 2 ranks: max loss difference {worst:.3g}")
        assert len(cli) == len(api["loss"]) == 3, (len(cli), len(api["loss"]))
        assert worst < 1e-6, f"losses differ: {api['loss']} vs {[c['loss'] for c in cli]}"

    def an_uncaught_exception_ends_the_job(self):
        # Without the module's exit on an uncaught exception, rank 0 would wait in evaluate and
        # rank 1 in MPI's finalization, for each other, until the watchdog (10 minutes).
        r = subprocess.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, "--one-rank-fails"],
                           capture_output=True, text=True, timeout=60, env=self.env)
        assert r.returncode != 0, "the job succeeded"
        assert "rank 1 fails on its own" in r.stderr, r.stderr[-1500:]

    def mistakes_raise_one_line_errors(self):
        out = self.run([sys.executable, __file__, "--errors"], "the error cases")
        cases = json.loads(out.strip().splitlines()[-1])
        want = [
            ["ConfigError", "Sequential: model.layers.0.units: must be > 0, got 0"],
            ["ConfigError", "Sequential: predict() before fit(): the model is built, and its "
                            "weights made, by fit()"],
            ["DataError", "fit: y must hold a class index, or 0/1 labels, per sample of x, (500,) "
                          "or (500, labels)"],
            ["ConfigError", None],
            ["CheckpointError", "Sequential: set_weights: layers.0.weight has shape (4, 9), the "
                                "model expects (4, 10)"],
            ["CheckpointError", None],
            ["DataError", "Sequential: evaluate arrays: label 7 of sample 0 is outside [0, 4) for "
                          "a model with 4 outputs"],
            ["KeyError", "\"the callback's own error\""],  # a callback's exception as it was raised
            ["none", ""],
        ]
        assert len(cases) == len(want), cases
        for (kind, message), (want_kind, want_message) in zip(cases, want):
            assert kind == want_kind, f"{kind}: {message} (expected {want_kind})"
            assert want_message is None or message == want_message, message
            assert "\n" not in message and (message or kind == "none"), message
        assert "training.allreduce" in cases[3][1], cases[3][1]
        assert "/nonexistent/w.safetensors" in cases[5][1], cases[5][1]

    def float_y_is_a_regression(self):
        import numpy as np
        out = os.path.join(self.tmp, "regression")
        self.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, "--regression", out],
                 "the regression under mpiexec -n 2")
        a, b = (json.load(open(f"{out}.{r}")) for r in range(2))
        assert (a["weight"], a["bias"]) == (b["weight"], b["bias"]), "the ranks hold different weights"
        x, y = np.array(a["x"]), np.array(a["y"])
        solution = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)[0]
        fitted = np.vstack([np.array(a["weight"]).T, a["bias"]])
        worst = float(np.max(np.abs(fitted - solution)))
        print(f"  regression on 2 ranks: weights within {worst:.2g} of least squares, "
              f"val_mae {a['history']['val_mae'][-1]:.4f}")
        assert worst < 1e-3, (fitted, solution)
        assert set(a["history"]) == {"loss", "mae", "val_loss", "val_mae", "learning_rate"}, a["history"]
        assert a["split"]["split"] == a["split"]["apart"], a["split"]
        ones, twos = a["split"]["ones"], a["split"]["twos"]
        assert ones["weights"] == twos["weights"] and ones["val_loss"] == twos["val_loss"], (ones, twos)
        assert [2 * v for v in ones["loss"]] == twos["loss"], (ones["loss"], twos["loss"])
        multi = a["split"]["multi_label"]
        assert multi["binary_accuracy"][-1] > 0.9 and multi["loss"][-1] < multi["loss"][0], multi

    def python_callbacks_see_each_epoch_and_stop_the_fit(self):
        out = os.path.join(self.tmp, "callbacks")
        printed = self.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, "--callbacks",
                            out], "the callbacks under mpiexec -n 2")
        assert printed.count("Total params: 44 ") == 1, printed  # summary(): 10 x 4 + 4, once
        for rank in range(2):  # rank 1 never sets stop_training: rank 0's decides for both
            r = json.load(open(f"{out}.{rank}"))
            assert len(r["history"]["loss"]) == 2, (rank, r["history"])
            assert [e for e, _ in r["seen"]] == [0, 1], (rank, r["seen"])
            for k, values in r["history"].items():
                assert [logs[k] for _, logs in r["seen"]] == values, (rank, k)
            assert r["same_model"], "the callback's model is not the model"
            assert r["last_epoch"] == r["after_fit"], "the last epoch's weights are not the fit's"
            assert r["not_a_callback"] == ("fit: callbacks: 42 is neither EarlyStopping nor "
                                           "ReduceLROnPlateau nor an object with "
                                           "on_epoch_end(epoch, logs)"), r["not_a_callback"]

    def fit_keeps_one_copy_of_the_arrays(self):
        # The module's copy of the NumPy arrays becomes the training set (two copies before).
        out = self.run([sys.executable, __file__, "--fit-memory"], "the memory case")
        m = json.loads(out.strip().splitlines()[-1])
        print(f"  fit on {m['features'] / 2**20:.0f} MB of features: peak memory "
              f"+{m['growth'] / 2**20:.1f} MB")
        assert m["growth"] < 1.5 * m["features"], m


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--module-dir")
    p.add_argument("--mpiexec")
    p.add_argument("--ddp-train")
    p.add_argument("--child")
    p.add_argument("--errors", action="store_true")
    p.add_argument("--one-rank-fails", action="store_true")
    p.add_argument("--fit-memory", action="store_true")
    p.add_argument("--regression")
    p.add_argument("--callbacks")
    a = p.parse_args()
    if a.child:
        return child(a.child)
    if a.errors:
        return errors()
    if a.one_rank_fails:
        return one_rank_fails()
    if a.fit_memory:
        return fit_memory()
    if a.regression:
        return regression(a.regression)
    if a.callbacks:
        return callbacks(a.callbacks)
    with tempfile.TemporaryDirectory(prefix="ddp_python_") as tmp:
        return run_scenarios("python api", Scenarios(a, tmp),
                             ["ranks_hold_the_same_bits", "two_ranks_train_what_one_does",
                              "trains_what_ddp_train_does", "an_uncaught_exception_ends_the_job",
                              "mistakes_raise_one_line_errors",
                              "fit_keeps_one_copy_of_the_arrays", "float_y_is_a_regression",
                              "python_callbacks_see_each_epoch_and_stop_the_fit"])


if __name__ == "__main__":
    sys.exit(main())
