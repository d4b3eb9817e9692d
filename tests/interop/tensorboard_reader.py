#!/usr/bin/env python3
"""TensorBoard's own reader on ddp_train's event files (Note [TensorBoard events]); registered
where a Python with the `tensorboard` package exists (CMake looks for one).
  fashion_mnist   2 epochs of the Fashion-MNIST MLP on 2 ranks with logging.tensorboard:
                  EventAccumulator finds every tag, the step loss every `every_steps` steps,
                  one value per epoch equal to metrics.jsonl's (as float32)
  resume          the newest checkpoint removed and the run resumed from the one before: the
                  re-trained epoch's steps appear once (SessionLog START purges the first
                  file's), and the epoch values are those of the resumed run
  run: tensorboard_reader.py --ddp-train build/ddp_train --mpiexec mpiexec --configs configs"""

import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "cli"))
from scenarios import mpi_env, required_args, run_scenarios  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa

EVERY = 25
TAGS = {"step/loss", "step/learning_rate", "epoch/loss", "epoch/accuracy", "epoch/val_loss",
        "epoch/val_accuracy", "epoch/samples_per_sec", "time/compute_ms_per_step",
        "time/exposed_communication_ms_per_step", "time/optimizer_ms_per_step"}


def as_float32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


class Scenarios:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp

    def train(self, run_dir, *extra):
        cmd = [self.args.mpiexec, "-n", "2", self.args.ddp_train, "--config",
               os.path.join(self.args.configs, "fashion_mnist_mlp.yaml"), "--run-dir", run_dir,
               "--set", "training.epochs=2", "--set", "logging.tensorboard=true",
               "--set", f"logging.every_steps={EVERY}", "--progress", "off", *extra]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=mpi_env())
        assert run.returncode == 0, run.stderr[-2000:]

    def read(self, run_dir):
        acc = EventAccumulator(os.path.join(run_dir, "tensorboard"))
        acc.Reload()
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
        return acc, records

    def check(self, acc, records):
        tags = set(acc.Tags()["scalars"])
        assert tags == TAGS, f"tags: {sorted(tags)}"
        epoch_steps = [e.step for e in acc.Scalars("epoch/loss")]
        assert len(epoch_steps) == len(records) == 2, f"epochs: {epoch_steps}, {len(records)}"
        per_epoch = epoch_steps[0]
        assert epoch_steps == [per_epoch, 2 * per_epoch], epoch_steps
        steps = [e.step for e in acc.Scalars("step/loss")]
        assert steps == list(range(EVERY, 2 * per_epoch + 1, EVERY)), steps
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            logged = [e.value for e in acc.Scalars(f"epoch/{key}")]
            wanted = [as_float32(r[key]) for r in records]
            assert logged == wanted, f"epoch/{key}: {logged} vs metrics.jsonl {wanted}"
        assert all(0 < e.value < 3 for e in acc.Scalars("step/loss"))

    def fashion_mnist(self):
        run_dir = os.path.join(self.tmp, "run")
        self.train(run_dir)
        self.check(*self.read(run_dir))

    def resume(self):
        run_dir = os.path.join(self.tmp, "resumed")
        self.train(run_dir, "--set", "checkpoint.every_epochs=1")
        checkpoints = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.ddpc")))
        assert len(checkpoints) == 2, checkpoints
        os.remove(checkpoints[-1])
        self.train(run_dir, "--set", "checkpoint.every_epochs=1", "--resume")
        assert len(os.listdir(os.path.join(run_dir, "tensorboard"))) == 2
        self.check(*self.read(run_dir))


def main():
    args = required_args("--ddp-train", "--mpiexec", "--configs")
    with tempfile.TemporaryDirectory(prefix="ddp_tensorboard_") as tmp:
        return run_scenarios("tensorboard reader", Scenarios(args, tmp),
                             ["fashion_mnist", "resume"])


if __name__ == "__main__":
    sys.exit(main())
