#!/usr/bin/python3
"""Loads a ddp-trainer safetensors export with the official `safetensors` package into a PyTorch
MLP (strict state-dict load) and checks its loss on a CSV file against the trainer's val_loss.
Needs torch and safetensors (Debian python3-torch, pip safetensors); not part of CI.
  tests/interop/torch_load.py WEIGHTS.safetensors DATA.csv METRICS.jsonl ACT [ACT ...]
ACT per hidden layer: relu, tanh or sigmoid."""

import csv
import json
import sys

import torch
from safetensors.torch import load_file


class Mlp(torch.nn.Module):
    def __init__(self, shapes, activations):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(i, o) for o, i in shapes)
        self.activations = [getattr(torch, a) for a in activations]

    def forward(self, x):
        for layer, act in zip(self.layers[:-1], self.activations):
            x = act(layer(x))
        return self.layers[-1](x)


def main(weights, data, metrics, *activations):
    state = load_file(weights)
    count = len(state) // 2
    model = Mlp([tuple(state[f"layers.{k}.weight"].shape) for k in range(count)], activations)
    model.load_state_dict(state, strict=True)
    with open(data) as f:
        rows = [list(map(float, r)) for r in list(csv.reader(f))[1:]]
    x = torch.tensor([r[:-1] for r in rows])
    y = torch.tensor([int(r[-1]) for r in rows])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(model(x), y).item()
    with open(metrics) as f:
        expected = [json.loads(l) for l in f][-1]["val_loss"]
    print(f"torch {torch.__version__}: loss {loss:.6f}, ddp-trainer val_loss {expected:.6f}")
    assert abs(loss - expected) <= 1e-5, "predictions differ"
    print("ok: the weights load strictly into PyTorch and give the same loss")


if __name__ == "__main__":
    main(*sys.argv[1:])
