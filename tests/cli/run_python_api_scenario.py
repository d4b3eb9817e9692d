#!/usr/bin/env python3
"""The Python module ddp_trainer (Note [Python API]) under mpiexec -n 1 and -n 2: a model fitted
on NumPy arrays with validation, fitted again (it trains on), then predicted, evaluated and its
weights read and saved. Both ranks hold the same bits; 2 ranks train what 1 does within 1e-5; the
first fit's losses are ddp_train's on the same arrays as .npy files and the same config within
1e-6; an exception one rank does not catch ends the job instead of hanging it; mistakes raise
the module's exceptions with the library's one-line messages; fit holds one copy of the arrays;
a float y is a regression's targets (a linear model finds the least-squares weights, and one
without a bias those through the origin), a 2-D
integer y 0/1 labels (multi-label); class_weight weighs the training loss only, sample_weight
the training loss and, given with them, the validation and evaluated losses;
validation_split holds out the last samples, as validation_data of them would; a Python callback
has Keras' on_train_begin, on_epoch_begin, on_train_batch_begin and _end (or Keras 2's
on_batch_end, but not Keras' do-nothing base hooks), on_epoch_end and on_train_end called in
order, sees each batch's running logs over the ranks and
every epoch's logs, can call the model's collectives (get_weights, predict) and stops the fit
on every rank when rank 0 sets model.stop_training, and sets model.optimizer.learning_rate as
Keras' LearningRateScheduler does (rank 0's rate trains every rank; refused under a schedule);
Keras weights files (.h5): Keras' groups and layouts, a round trip bit for bit, the errors;
Keras' arguments: shuffle=False, initial_epoch, the History object, evaluate's forms, optimizers
by name, count_params, predict's batch_size and verbose; BackupAndRestore: a job killed on 2 ranks goes on on 1 to the
uninterrupted run's weights; summary() prints once; the transformer layers fit, their weights go
both ways as safetensors, and Keras' files refuse them on every rank; residual blocks
(ddp.Residual) fit on 2 ranks, and their .keras and .weights.h5 files (a functional model's)
reload to the same predictions; a tag per token from y of shape (texts, steps), evaluate's loss and accuracy the
means over every token (python_api_text.py).
  run_python_api_scenario.py --module-dir build/python --mpiexec mpiexec --ddp-train build/ddp_train"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from python_api_keras import (check_keras_optimizer_state, keras_arguments, keras_file,
                              keras_optimizer_state)
from python_api_ranks import (backup, callbacks, child, data, errors, fit_memory, learning_rate,
                              one_rank_fails, regression)
from python_api_text import resnet, tags, transformer
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
optimizer: {{type: adam, rule: keras, learning_rate: 0.01}}  # ddp.Adam: Keras' rule
training: {{epochs: 3, global_batch_size: 64, tail: partial}}
"""


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
        pairs = [(one["predict"], two["predict"]), (one["on_batch"], two["on_batch"])]
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
                            "weights made, by fit() (or by build(), given the input shape)"],
            ["DataError", "fit: y must hold a class index, or 0/1 labels, per sample of x, (500,) "
                          "or (500, labels...)"],
            ["ConfigError", None],
            ["CheckpointError", "Sequential: set_weights: layers.0.weight has shape (4, 9), the "
                                "model expects (4, 10)"],
            ["CheckpointError", None],
            ["DataError", "Sequential: evaluate arrays: label 7 of sample 0 is outside [0, 4) for "
                          "a model with 4 outputs"],
            ["DataError", "fit: sample_weight must hold one weight per sample of x, (500,)"],
            ["DataError", "Sequential: evaluate arrays: the weight of sample 3 is -2.000000; "
                          "sample weights must be finite and >= 0"],
            ["KeyError", "\"the callback's own error\""],  # a callback's exception as it was raised
            ["none", ""],
            ["ConfigError", "Sequential: optimizer.schedule: the learning rate is the cosine "
                            "schedule's; a callback sets it only under a constant schedule (Keras "
                            "refuses to set a LearningRateSchedule's rate too)"],
            ["ConfigError", "Sequential: optimizer.learning_rate: must be > 0, got -0.5"],
            ["ConfigError", "Residual: layers[1]: a layer of ddp_trainer's or Keras', not 42"],
        ]
        assert len(cases) == len(want), cases
        for (kind, message), (want_kind, want_message) in zip(cases, want):
            assert kind == want_kind, f"{kind}: {message} (expected {want_kind})"
            assert want_message is None or message == want_message, message
            assert "\n" not in message and (message or kind == "none"), message
        assert "training.allreduce" in cases[3][1], cases[3][1]
        assert "/nonexistent/w.safetensors" in cases[5][1], cases[5][1]

    def fitted_and_reloaded(self, flag, what):
        """The two ranks' records of python_api_text.fit_and_round_trip under mpiexec -n 2: the
        same losses, the safetensors reloaded into another model; rank 0's record."""
        out = os.path.join(self.tmp, flag)
        self.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, f"--{flag}", out],
                 f"{what} under mpiexec -n 2")
        a, b = (json.load(open(f"{out}.{r}")) for r in range(2))
        assert a["loss"] == b["loss"], "the ranks' histories differ"
        assert a["reloaded_same"] and a["before_differs"], a
        return a

    def transformer_layers(self):
        a = self.fitted_and_reloaded("transformer", "the transformer")
        assert a["loss"][-1] < a["loss"][0], a["loss"]
        assert a["shapes"]["layers.1.weight"] == [6, 8], a["shapes"]
        assert a["shapes"]["layers.2.self_attn.in_proj_weight"] == [24, 8], a["shapes"]
        assert a["shapes"]["layers.2.linear1.weight"] == [16, 8], a["shapes"]
        files = a["keras_files"]
        assert "model.layers.1: position_embedding is not written to Keras' configs" in files[0], \
            files
        assert files[1].startswith("position_embedding: Keras' weights files"), files
        print(f"  transformer on 2 ranks: loss {a['loss'][0]:.3f} -> {a['loss'][-1]:.3f}, "
              "safetensors both ways, Keras' files refused naming the layer")

    def residual_blocks(self):
        a = self.fitted_and_reloaded("resnet", "residual blocks")
        assert a["loss"][-1] < 0.8 * a["loss"][0], a["loss"]
        assert a["shapes"]["layers.1.layers.1.running_var"] == [8], a["shapes"]
        assert a["shapes"]["layers.2.shortcut.0.weight"] == [16, 8, 1, 1], a["shapes"]
        # Note [Keras functional models]: Keras' files hold the blocks as a functional model.
        assert a["keras_files"] == ["reloaded, the same predictions"] * 2, a["keras_files"]
        print(f"  residual blocks on 2 ranks: loss {a['loss'][0]:.3f} -> {a['loss'][-1]:.3f}, "
              "safetensors, .keras and .weights.h5 reloaded predict the same")

    def a_class_per_step(self):
        out = os.path.join(self.tmp, "tags")
        self.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, "--tags", out],
                 "tagging tokens under mpiexec -n 2")
        a, b = (json.load(open(f"{out}.{r}")) for r in range(2))
        assert a == b, "the ranks saw different things"
        assert a["shape"] == [256, 6, 3], a["shape"]
        assert a["accuracy"] == a["by_hand"] and a["accuracy"] > 0.9, a
        assert abs(a["evaluated_loss"] - a["loss_by_hand"]) < 1e-5, a
        print(f"  a tag per token on 2 ranks: loss {a['loss'][0]:.3f} -> {a['loss'][-1]:.3f}, "
              f"accuracy {a['accuracy']:.4f} (the mean over every token), predict (256, 6, 3)")

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
        origin = a["through_origin"]
        assert list(origin) == ["layers.0.weight", "y"], list(origin)
        solution = np.linalg.lstsq(x, np.array(origin["y"]), rcond=None)[0]
        worst = float(np.max(np.abs(np.array(origin["layers.0.weight"]).T - solution)))
        print(f"  without a bias: weights within {worst:.2g} of least squares through the origin")
        assert worst < 1e-3, (origin, solution)
        assert set(a["history"]) == {"loss", "mae", "val_loss", "val_mae", "learning_rate"}, a["history"]
        assert a["split"]["split"] == a["split"]["apart"], a["split"]
        ones, twos = a["split"]["ones"], a["split"]["twos"]
        assert ones["weights"] == twos["weights"] and ones["val_loss"] == twos["val_loss"], (ones, twos)
        assert [2 * v for v in ones["loss"]] == twos["loss"], (ones["loss"], twos["loss"])
        plain, weighted = a["split"]["plain"], a["split"]["sample_twos"]
        assert plain["weights"] == weighted["weights"], (plain, weighted)
        assert [2 * v for v in plain["loss"]] == weighted["loss"], (plain, weighted)
        assert [v / 2 for v in plain["val_loss"]] == weighted["val_loss"], (plain, weighted)
        assert plain["evaluated"] == weighted["evaluated"] == plain["val_loss"][-1] / 2, plain
        per_step = a["split"]["per_step"]
        with_bias = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)[0]
        worst = float(np.max(np.abs(np.array(per_step["weight"]).T - with_bias[:3])))
        print(f"  a target per step: weights within {worst:.2g} of least squares")
        assert worst < 1e-2 and per_step["predicted"] == [64, 4, 2], per_step
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
            # Each batch's hooks between its epoch's (Keras' do-nothing base hook never runs).
            steps = sum(call[0] == "batch_end" for call in r["calls"]) // 2
            assert steps > 1, (rank, r["calls"])
            batches = [call for b in range(steps) for call in (["batch_begin", b, {}],
                                                                ["batch_end", b])]
            assert r["calls"] == [["train_begin", {}], ["epoch_begin", 0, {}], *batches,
                                  ["epoch_end", 0], ["epoch_begin", 1, {}], *batches,
                                  ["epoch_end", 1], ["train_end", r["seen"][-1][1]]], \
                (rank, r["calls"])
            # on_train_batch_end's logs: the running loss and accuracy over both ranks, the last
            # batch's the epoch's.
            assert [b for b, _ in r["batch_logs"]] == list(range(steps)) * 2, r["batch_logs"]
            for epoch in range(2):
                last = r["batch_logs"][(epoch + 1) * steps - 1][1]
                assert sorted(last) == ["accuracy", "loss"], last
                for k in last:
                    assert last[k] == r["history"][k][epoch], (rank, k, last, r["history"])
            assert r["batch_logs"][0][1]["loss"] != r["batch_logs"][steps - 1][1]["loss"]
            for k, values in r["history"].items():
                assert [logs[k] for _, logs in r["seen"]] == values, (rank, k)
            assert r["same_model"], "the callback's model is not the model"
            assert r["last_epoch"] == r["after_fit"], "the last epoch's weights are not the fit's"
            # stop_training set by a batch hook (rank 0's): that batch ends the fit, the
            # stopped epoch evaluated; set in on_train_begin, one batch trains.
            stopped = r["stopped"]
            steps = (500 + 31) // 32
            assert stopped["batches"] == [[0, b] for b in range(steps)] + [[1, 0], [1, 1], [1, 2]], \
                (rank, stopped["batches"])
            assert len(stopped["history"]["loss"]) == len(stopped["history"]["val_loss"]) == 2, \
                (rank, stopped["history"])
            assert stopped["flag"], rank
            assert len(stopped["at_start"][0]["loss"]) == 1 and stopped["at_start"][1] == [[0, 0]], \
                (rank, stopped["at_start"])
            assert r["not_a_callback"] == ("fit: callbacks: 42 is not EarlyStopping, "
                                           "ReduceLROnPlateau, BackupAndRestore or an object with "
                                           "on_epoch_end(epoch, logs) or another of Keras' "
                                           "callback methods"), r["not_a_callback"]

    def callbacks_set_the_learning_rate(self):
        out = os.path.join(self.tmp, "learning_rate")
        self.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, "--learning-rate", out],
                 "the learning-rate callback under mpiexec -n 2")
        r = [json.load(open(f"{out}.{rank}")) for rank in range(2)]
        assert r[0]["weights"] == r[1]["weights"], "the ranks' weights differ"
        for rank in range(2):  # rank 0's rates, which every rank reads back
            rates = r[rank]["history"]["learning_rate"]
            assert [round(v, 6) for v in rates] == [0.2, 0.1, 0.05], (rank, rates)
            assert [round(v, 6) for v in r[rank]["read"]] == [0.1, 0.2, 0.1], r[rank]["read"]
            assert round(r[rank]["after"], 6) == 0.05, r[rank]["after"]
        worst = max(abs(a - b) for row, ref in zip(r[0]["weights"], r[0]["reference"])
                    for a, b in zip(row, ref))
        print(f"  rates set by a callback: 0.2, 0.1, 0.05 on both ranks; against the same steps "
              f"compiled in: max abs diff {worst:.2e}")
        assert worst < 1e-5, worst

    def keras_weights_files(self):
        out = os.path.join(self.tmp, "keras")
        with open(out + ".junk.h5", "wb") as f:
            f.write(b"not an HDF5 file")
        import h5py  # a file of Keras' groups whose first layer's bias is complex
        import numpy as np
        with h5py.File(out + ".complex.h5", "w") as f:
            f["layers/conv2d/vars/0"] = np.zeros((3, 3, 3, 4), np.float32)
            for i in range(4):
                f[f"layers/batch_normalization/vars/{i}"] = np.ones(4, np.complex64 if i == 0
                                                                    else np.float32)
        self.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, "--keras-file", out],
                 "the Keras weights files under mpiexec -n 2")
        for rank in range(2):
            r = json.load(open(f"{out}.{rank}"))
            assert r["same"], "the loaded weights are not the saved ones"
            # Keras' groups and layouts: kernels (kernel_h, kernel_w, in, filters) and (in, out).
            assert r["groups"] == {
                "layers/conv2d/vars/0": [3, 3, 3, 4],
                "layers/batch_normalization/vars/0": [4], "layers/batch_normalization/vars/1": [4],
                "layers/batch_normalization/vars/2": [4], "layers/batch_normalization/vars/3": [4],
                "layers/dense/vars/0": [36, 8], "layers/dense/vars/1": [8],
                "layers/dense_1/vars/0": [8, 3], "layers/dense_1/vars/1": [3]}, r["groups"]
            assert r["kernel_is_transposed"] and r["conv_is_keras"], r
            assert r["layers"] == [["Conv2D", "conv2d", 108], ["BatchNormalization",
                                                              "batch_normalization", 16],
                                   ["MaxPooling2D", "max_pooling2d", 0], ["Flatten", "flatten", 0],
                                   ["Dense", "dense", 296], ["Dropout", "dropout", 0],
                                   ["Dense", "dense_1", 27]], r["layers"]
            assert r["count_params"] == 108 + 16 + 296 + 27, r["count_params"]
            assert r["layer_weights"], "model.layers' weights are not the Keras file's"
            assert r["layers_copied"], "set_weights layer by layer did not copy the model"
            assert r["layer_shape_error"] == ("Sequential: layers[4].set_weights: variable 0 has "
                                              "shape (3, 3), the layer's is (36, 8)"), r
            assert r["archive"] == ["metadata.json", "config.json", "model.weights.h5"], r
            assert r["classes"] == ["InputLayer", "Conv2D", "BatchNormalization", "MaxPooling2D",
                                    "Flatten", "Dense", "Dropout", "Dense"], r["classes"]
            assert r["archived_weights"], "the .keras file's weights are not the model's"
            assert r["loaded"] == [True, True, True], r["loaded"]
            assert r["load_errors"][0] == [
                "ConfigError", f"{out}.unknown.{rank}.keras: config.json: layers[4] (ConvLSTM2D): "
                               "the layer class ConvLSTM2D; ddp-trainer's layers do not have it"], \
                r["load_errors"]
            assert r["load_errors"][1] == [
                "ConfigError", f"{out}.rate.{rank}.keras: Sequential: model.layers.5.rate: must "
                               "be in [0, 1), got 2"], r["load_errors"]
            assert r["load_errors"][2] == (
                ["TrainingError", "another rank failed"] if rank else
                ["CheckpointError", f"{out}.weights.h5: not a Keras model file (a zip with "
                                    "config.json): " + r["load_errors"][2][1].split("): ", 1)[-1]]
            ), r["load_errors"]
            assert r["save_errors"][1:] == [
                ["ConfigError", f"Sequential: save: {out}.model: a model file's name ends in "
                                ".keras (Keras' format); the weights alone: save_weights"],
                ["ConfigError", "Sequential: save() before fit(): the model is built, "
                                "and its weights made, by fit() (or by build(), given the input "
                                "shape)"]], r["save_errors"]
            assert r["save_errors"][0] == (
                ["TrainingError", "another rank failed"] if rank else
                ["CheckpointError", f"{out}.keras: exists, and save(overwrite=False) does not "
                                    "replace it"]), r["save_errors"]
            if rank == 1:  # rank 0 reads and writes; the others learn that it failed
                assert r["errors"] == [["TrainingError", "another rank failed"]] * 4, r["errors"]
                continue
            path = out + ".weights.h5"
            assert r["errors"] == [
                ["CheckpointError", f"{path}: exists, and save_weights(overwrite=False) does not "
                                    "replace it"],
                ["CheckpointError", f"{path}: layers/batch_normalization holds variables, and "
                                    "the model has no such layer"],
                ["CheckpointError", f"{out}.junk.h5: not a Keras weights file (HDF5): "
                                    + r["errors"][2][1].split("(HDF5): ", 1)[-1]],
                ["CheckpointError", f"{out}.complex.h5: layers/batch_normalization (layers.1, "
                                    "batch_normalization): variable 0 holds complex64 values; a "
                                    "weight is a real number"],
            ], r["errors"]
            assert "\n" not in r["errors"][2][1], r["errors"][2][1]

    def keras_files_carry_the_optimizer(self):
        out = os.path.join(self.tmp, "optimizer")
        self.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, "--keras-optimizer", out],
                 "the optimizer's state in Keras files under mpiexec -n 2")
        for rank in range(2):
            check_keras_optimizer_state(out, rank, json.load(open(f"{out}.{rank}")))

    def keras_arguments(self):
        out = self.run([sys.executable, __file__, "--keras-arguments"], "Keras' arguments")
        r = json.loads(out.strip().splitlines()[-1])
        assert r["halves"] < 1e-6 < 1e-4 < r["shuffled"], r  # in the data's order, or not
        assert r["named_optimizer"], "compile('Adam') is not compile(ddp.Adam())"
        assert r["params_before_fit"] == r["params_after_fit"] == 10 * 16 + 16 + 16 * 4 + 4, r
        (loss, accuracy), named = r["evaluate"]
        assert named == {"loss": loss, "accuracy": accuracy}, r["evaluate"]
        assert isinstance(r["loss_only"], float), r["loss_only"]
        assert r["predict"], "predict(batch_size=7) differs"
        assert r["initial_epoch"] == [True, 2, [2, 3]], r["initial_epoch"]
        assert r["history_object"] == ["History", True, [2, 3], True], r["history_object"]
        assert r["validation_freq"] == [4, 2, 3], r["validation_freq"]
        assert r["build"] == [False, [None, 10], True, [64, 4], True], r["build"]
        assert r["on_batch"] == {"weights": True, "second_batch": True, "test": True,
                                 "predict": True,
                                 "training": "Sequential: model(x, training=True): only "
                                             "inference; train with fit or train_on_batch"}, \
            r["on_batch"]
        assert r["refused"] == [
            "fit: steps_per_epoch: not supported; each epoch trains (and validates) one whole pass "
            "over the data",
            "fit: validation_freq: a number of epochs or a list of the epochs to validate, not '2'",
            "fit: validation_freq: a number of epochs or a list of the epochs to validate, not "
            "[1.5]"], r["refused"]
        error = ("Sequential: loss.from_logits: true, but the model ends in softmax, whose outputs "
                 "are probabilities; drop the softmax (the loss applies it) or from_logits")
        assert r["losses"] == [True, True, True, False, error, error], r["losses"]
        assert r["callbacks"] == [["max", "min", "max"], {"verbose": 0, "epochs": 3, "steps": 4},
                                  "Sequential"], r["callbacks"]  # 64 samples, 20 a batch
        # GELU is not ReLU; Keras' LeakyReLU(0.1) is ddp's of 0.1, not of its default 0.3;
        # Activation("leaky_relu") is LeakyReLU(0.2); LayerNormalization(16) adds gamma and beta
        assert r["activations"] == [True, True, False, True, False, True, True, 32], \
            r["activations"]
        assert r["layers"] == [
            [None, 10], True, True, "Sequential: pop: there is no layer to remove",
            "Sequential: add after the model is built (by fit or build): its layers are fixed; "
            "make a new Sequential",
            "Sequential: trainable = False would freeze every layer, leaving nothing to train; "
            "freeze layers: model.layers[i].trainable = False",
            "Sequential: layers[0] (ConvLSTM2D): the layer class ConvLSTM2D; ddp-trainer's layers do "
            "not have it", "Sequential: layers[0]: a layer of ddp_trainer's or Keras', not 3",
            "Sequential: input_shape (12), and the Keras input's shape is (10)"], r["layers"]
        # Frozen for the fit after compile(); Keras' Dense(trainable=False) and ddp's are the
        # layer frozen through model.layers
        assert r["frozen"] == [
            False, True,
            "Sequential: fit: layers were frozen or unfrozen (trainable) since the last fit; "
            "compile() again first, as Keras needs, for an optimizer of the weights now trained",
            True, False, True, True, True], r["frozen"]
        assert r["metrics"] == [
            ["accuracy", "learning_rate", "loss", "sparse_categorical_accuracy", "val_accuracy",
             "val_loss", "val_sparse_categorical_accuracy"], True,
            "Sequential: compile: the metric TopKCategoricalAccuracy is not one ddp-trainer has "
            "(AUC, BinaryAccuracy, CategoricalAccuracy, MeanAbsoluteError, "
            "SparseCategoricalAccuracy, or one by name)",
            "Sequential: metrics: auc ranks the probabilities of independent labels; it needs "
            "binary_crossentropy",
            "Sequential: compile: the metric SparseCategoricalAccuracy: name \"acc\"; "
            "ddp-trainer's metrics do not have it",
            "Sequential: compile: metrics: a list, not 'accuracy'",
            "Sequential: metrics: accuracy is listed twice"], r["metrics"]
        assert r["embedding"] == [
            {"layers.0.weight": [20, 4], "layers.1.weight": [3, 4], "layers.1.bias": [3]}, True,
            "Sequential: predict arrays: sample 2, value 0 is 20, not a token id in [0, 20) for "
            "the embedding's input_dim 20"], r["embedding"]
        assert r["optimizers"] == [
            True, False, 0.001, True, False, True, True, True, True,
            "Sequential: compile: optimizer 'adafactor' is not one the trainer has (adam, adamw, "
            "rmsprop, sgd, adagrad, adamax, nadam, lion)",
            "Sequential: compile: the optimizer Adam: amsgrad true; ddp-trainer's optimizers do "
            "not have it",
            "Sequential: compile: the optimizer SGD: learning_rate \"fast\" is not a number",
            "Sequential: compile: the optimizer SGD: its get_config() is not a dict of settings"],\
            r["optimizers"]

    def backup_and_restore_continues_a_killed_job(self):
        out = os.path.join(self.tmp, "backup")
        died = subprocess.run([self.a.mpiexec, "-n", "2", sys.executable, __file__, "--backup",
                               out, "--mode", "die"], capture_output=True, text=True,
                              timeout=120, env=self.env)
        assert died.returncode != 0, "the job that dies succeeded"
        assert os.path.exists(out + ".backup/latest"), os.listdir(self.tmp)
        # On one rank now: the checkpoint's positions count global batches.
        self.run([sys.executable, __file__, "--backup", out, "--mode", "resume"], "the resumed fit")
        self.run([sys.executable, __file__, "--backup", out, "--mode", "whole"], "the whole fit")
        resumed = json.load(open(f"{out}.resume.0"))
        whole = json.load(open(f"{out}.whole.0"))
        worst = max(abs(a - b) for a, b in zip(resumed["weights"], whole["weights"]))
        print(f"  killed on 2 ranks after 2 of 4 epochs, resumed on 1: max weight difference "
              f"{worst:.2e} against 4 epochs on 1")
        assert len(resumed["history"]["loss"]) == 2, resumed["history"]
        assert worst < 1e-5, worst
        assert not os.path.exists(out + ".backup"), "the backup outlived the fit"

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
    p.add_argument("--transformer")
    p.add_argument("--tags")
    p.add_argument("--resnet")
    p.add_argument("--callbacks")
    p.add_argument("--learning-rate")
    p.add_argument("--keras-file")
    p.add_argument("--keras-arguments", action="store_true")
    p.add_argument("--keras-optimizer")
    p.add_argument("--backup")
    p.add_argument("--mode")
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
    if a.transformer:
        return transformer(a.transformer)
    if a.tags:
        return tags(a.tags)
    if a.resnet:
        return resnet(a.resnet)
    if a.callbacks:
        return callbacks(a.callbacks)
    if a.learning_rate:
        return learning_rate(a.learning_rate)
    if a.keras_file:
        return keras_file(a.keras_file)
    if a.keras_optimizer:
        return keras_optimizer_state(a.keras_optimizer)
    if a.keras_arguments:
        return keras_arguments()
    if a.backup:
        return backup(a.backup, a.mode)
    with tempfile.TemporaryDirectory(prefix="ddp_python_") as tmp:
        return run_scenarios("python api", Scenarios(a, tmp),
                             ["ranks_hold_the_same_bits", "two_ranks_train_what_one_does",
                              "trains_what_ddp_train_does", "an_uncaught_exception_ends_the_job",
                              "mistakes_raise_one_line_errors",
                              "fit_keeps_one_copy_of_the_arrays", "float_y_is_a_regression",
                              "transformer_layers", "a_class_per_step", "residual_blocks",
                              "python_callbacks_see_each_epoch_and_stop_the_fit",
                              "callbacks_set_the_learning_rate", "keras_weights_files",
                              "keras_files_carry_the_optimizer",
                              "keras_arguments", "backup_and_restore_continues_a_killed_job"])


if __name__ == "__main__":
    sys.exit(main())
