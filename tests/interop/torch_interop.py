#!/usr/bin/python3
"""PyTorch interop, both directions, through the official `safetensors` package:
  1. ddp_train trains a model and exports it; PyTorch loads the weights strictly into a ModuleList
     of nn.Linear and predicts the 100 test samples: max abs diff to ddp_train's own predictions
     (--predict-out) <= 1e-5.
  2. PyTorch writes a freshly initialized model; ddp_train --init-from it and predicts the same
     samples without training: max abs diff to PyTorch's predictions <= 1e-5.
Needs torch and safetensors (Debian python3-torch; pip safetensors). CTest registers it only when
/usr/bin/python3 can import both; otherwise CMake says so.
  tests/interop/torch_interop.py --ddp-train build/ddp_train --mpiexec mpiexec"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

ACTIVATIONS = ["tanh", "relu"]


class Mlp(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(i, o) for i, o in zip(sizes, sizes[1:]))

    def forward(self, x):
        for layer, act in zip(self.layers[:-1], ACTIVATIONS):
            x = getattr(torch, act)(layer(x))
        return torch.softmax(self.layers[-1](x), dim=1)


def read_rows(path):
    with open(path) as f:
        return [list(map(float, r)) for r in list(csv.reader(f))[1:]]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ddp-train", required=True)
    p.add_argument("--mpiexec", required=True)
    args = p.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="ddp_torch_") as tmp:
        data = torch.rand(300, 6)
        labels = (data[:, 0] * 3 + data[:, 1] * 2).long() % 4
        for name, rows in (("train", range(200)), ("test", range(200, 300))):
            with open(f"{tmp}/{name}.csv", "w") as f:
                f.write("a,b,c,d,e,f,label\n")
                for i in rows:
                    f.write(",".join(f"{v:.6f}" for v in data[i].tolist()) + f",{labels[i]}\n")
        with open(f"{tmp}/c.yaml", "w") as f:
            f.write(f"""data:
  train: {{type: csv, path: {tmp}/train.csv}}
  test: {{type: csv, path: {tmp}/test.csv}}
model:
  layers:
    - {{type: dense, units: 16, activation: {ACTIVATIONS[0]}}}
    - {{type: dense, units: 12, activation: {ACTIVATIONS[1]}}}
    - {{type: dense, units: 4, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {{type: adam, learning_rate: 0.02}}
training: {{epochs: 5, global_batch_size: 20}}
""")
        test = read_rows(f"{tmp}/test.csv")
        x = torch.tensor([r[:-1] for r in test])

        def ddp(run, *extra):  # each call its own run directory: a fresh run
            subprocess.run([args.mpiexec, "-n", "2", args.ddp_train, "--config", f"{tmp}/c.yaml",
                            "--run-dir", f"{tmp}/{run}", *extra], check=True, env=env,
                           capture_output=True, timeout=120)

        ddp("trained", "--export-safetensors", f"{tmp}/trained.safetensors",
            "--predict-out", f"{tmp}/p1.csv")
        model = Mlp([6, 16, 12, 4])
        model.load_state_dict(load_file(f"{tmp}/trained.safetensors"), strict=True)
        with torch.no_grad():
            mine = model(x)
        theirs = torch.tensor([r[:-1] for r in read_rows(f"{tmp}/p1.csv")])
        diff1 = (mine - theirs).abs().max().item()
        print(f"ddp-trainer -> PyTorch: {len(test)} samples, max abs diff {diff1:.2e}")

        fresh = Mlp([6, 16, 12, 4])
        save_file({k: v.contiguous() for k, v in fresh.state_dict().items()},
                  f"{tmp}/torch.safetensors")
        ddp("from_torch", "--init-from", f"{tmp}/torch.safetensors", "--stop-after", "0",
            "--predict-out", f"{tmp}/p2.csv")
        with torch.no_grad():
            expected = fresh(x)
        got = torch.tensor([r[:-1] for r in read_rows(f"{tmp}/p2.csv")])
        diff2 = (expected - got).abs().max().item()
        print(f"PyTorch -> ddp-trainer (--init-from): max abs diff {diff2:.2e}")
    ok = diff1 <= 1e-5 and diff2 <= 1e-5
    print(f"torch interop ({torch.__version__}): {2 if ok else 0} passed, {0 if ok else 2} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
