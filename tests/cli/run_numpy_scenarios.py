#!/usr/bin/env python3
"""NumPy data through ddp_train (Note [npy format]), on the real data set:
  npy_equals_idx   Fashion-MNIST written as .npy files here (uint8 images (N, 28, 28), uint8
                   labels), read with scale 1/255: one epoch on 2 ranks gives metrics.jsonl records
                   bit-identical to the IDX run's (loss, accuracy, val_loss, val_accuracy)
  npz_equals_idx   the same arrays in one compressed .npz archive (as np.savez_compressed writes
                   it): bit-identical too
The files are written in plain Python (struct, zipfile), so the test needs no NumPy.
  run_numpy_scenarios.py --ddp-train build/ddp_train --mpiexec mpiexec --configs configs"""

import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile
import zipfile

from scenarios import mpi_env, required_args, run_scenarios

DATA = "/usr/share/datasets/fashion-mnist"
LIMIT_S = 300


def read_idx(path):
    """(dims, raw bytes) of an IDX file of unsigned bytes."""
    with gzip.open(path, "rb") as f:
        blob = f.read()
    ndims = blob[3]
    dims = struct.unpack(f">{ndims}I", blob[4:4 + 4 * ndims])
    return dims, blob[4 + 4 * ndims:]


def npy_bytes(dims, data):
    """A version 1.0 .npy of uint8 values in C order."""
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (%s), }" % "".join(
        f"{d}, " for d in dims)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


class Scenarios:
    def __init__(self, args, tmp):
        self.args, self.tmp, self.env = args, tmp, mpi_env()
        self.arrays = {}
        for split, prefix in (("train", "train"), ("test", "t10k")):
            for kind, name in (("x", "images-idx3"), ("y", "labels-idx1")):
                dims, data = read_idx(f"{DATA}/{prefix}-{name}-ubyte.gz")
                self.arrays[f"{split}_{kind}"] = npy_bytes(dims, data)
        for name, blob in self.arrays.items():
            with open(f"{tmp}/{name}.npy", "wb") as f:
                f.write(blob)
        for split in ("train", "test"):
            with zipfile.ZipFile(f"{tmp}/{split}.npz", "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("x.npy", self.arrays[f"{split}_x"])
                z.writestr("y.npy", self.arrays[f"{split}_y"])
        self.reference = self.train("idx", [])

    def train(self, name, sets):
        run_dir = f"{self.tmp}/{name}"
        cmd = [self.args.mpiexec, "-n", "2", self.args.ddp_train, "--config",
               f"{self.args.configs}/fashion_mnist_mlp.yaml", "--run-dir", run_dir,
               "--set", "training.epochs=1", "--set", "checkpoint.every_epochs=0"]
        for s in sets:
            cmd += ["--set", s]
        result = subprocess.run(cmd, capture_output=True, text=True, env=self.env,
                                timeout=LIMIT_S, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise AssertionError(f"{name}: exit {result.returncode}: {result.stderr[-1500:]}")
        with open(f"{run_dir}/metrics.jsonl") as f:
            record = json.loads(f.readline())
        return {k: record[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}

    def expect_reference(self, name, sets):
        got = self.train(name, sets)
        if got != self.reference:
            raise AssertionError(f"{name}: {got} differs from the IDX run's {self.reference}")

    def npy_equals_idx(self):
        scale = "scale=0.00392156862745098"  # 1/255, as the IDX reader's normalize
        self.expect_reference("npy", [
            f"data.train={{type: npy, features: {self.tmp}/train_x.npy, "
            f"labels: {self.tmp}/train_y.npy, {scale.replace('=', ': ')}}}",
            f"data.test={{type: npy, features: {self.tmp}/test_x.npy, "
            f"labels: {self.tmp}/test_y.npy, {scale.replace('=', ': ')}}}"])

    def npz_equals_idx(self):
        self.expect_reference("npz", [
            f"data.train={{type: npz, path: {self.tmp}/train.npz, features: x, labels: y, "
            "scale: 0.00392156862745098}",
            f"data.test={{type: npz, path: {self.tmp}/test.npz, features: x, labels: y, "
            "scale: 0.00392156862745098}"])


def main():
    args = required_args("--ddp-train", "--mpiexec", "--configs")
    if not os.path.exists(f"{DATA}/train-images-idx3-ubyte.gz"):
        print(f"skipped: {DATA} is missing (apt-get install dataset-fashion-mnist)")
        return 77
    with tempfile.TemporaryDirectory(prefix="ddp_numpy_") as tmp:
        return run_scenarios("numpy scenarios", Scenarios(args, tmp),
                             ["npy_equals_idx", "npz_equals_idx"])


if __name__ == "__main__":
    sys.exit(main())
