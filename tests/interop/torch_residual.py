"""Residual blocks (Note [residual blocks]) against PyTorch, for torch_interop.py: a small ResNet
whose blocks are modules keeping `layers` and `shortcut` lists, as ddp-trainer names their
parameters; the identity block and a strided one with a projection shortcut, batch normalization
in both branches."""

import os
import subprocess
import sys

import torch
from safetensors.torch import load_file, save_file

from torch_steps import batch_norm_sgd_step, read_rows

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "benchmarks"))
from torch_resnet import ResNet  # noqa: E402


CONFIG = """
    - {type: conv2d, filters: 8, kernel_size: 3, padding: same, use_bias: false}
    - {type: batch_normalization, momentum: 0.9, epsilon: 0.00001, sync: true}
    - {type: relu}
    - type: residual
      layers:
        - {type: conv2d, filters: 8, kernel_size: 3, padding: same, use_bias: false}
        - {type: batch_normalization, momentum: 0.9, epsilon: 0.00001, sync: true}
        - {type: relu}
        - {type: conv2d, filters: 8, kernel_size: 3, padding: same}
        - {type: batch_normalization, momentum: 0.9, epsilon: 0.00001, sync: true}
    - {type: relu}
    - type: residual
      layers:
        - {type: conv2d, filters: 12, kernel_size: 3, strides: 2, padding: same, use_bias: false}
        - {type: batch_normalization, momentum: 0.9, epsilon: 0.00001, sync: true}
        - {type: relu}
        - {type: conv2d, filters: 12, kernel_size: 3, padding: same}
        - {type: batch_normalization, momentum: 0.9, epsilon: 0.00001, sync: true}
      shortcut:
        - {type: conv2d, filters: 12, kernel_size: 1, strides: 2, use_bias: false}
        - {type: batch_normalization, momentum: 0.9, epsilon: 0.00001, sync: true}
    - {type: relu}
    - {type: global_average_pooling2d}
    - {type: dense, units: 4, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: sgd, learning_rate: 0.5}
training: {epochs: 1, global_batch_size: 200}
"""


def residual_check(args, env, tmp, data_yaml):
    """On the convnet checks' ctrain.csv and ctest.csv: PyTorch's ResNet, random running
    statistics, loaded by ddp-trainer predicts as PyTorch does; one SGD step on 200 samples with
    synchronized batch statistics on 2 ranks gives PyTorch's weights and running statistics."""
    rows = read_rows(f"{tmp}/ctest.csv")
    x = torch.tensor([r[:-1] for r in rows])
    train = read_rows(f"{tmp}/ctrain.csv")
    train_x = torch.tensor([r[:-1] for r in train])
    train_y = torch.tensor([int(r[-1]) for r in train])
    with open(f"{tmp}/resnet.yaml", "w") as f:
        f.write(data_yaml + CONFIG)
    torch.manual_seed(4)
    # The config below: an identity block of 8, then a strided one with a projection to 12.
    model = ResNet((6, 6, 3), 8, [(8, 1), (12, 2)], 4, bias=True, eps=1e-5)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              f"{tmp}/resnet0.safetensors")

    def ddp(run, *extra):
        subprocess.run([args.mpiexec, "-n", "2", args.ddp_train, "--config", f"{tmp}/resnet.yaml",
                        "--run-dir", f"{tmp}/{run}", "--init-from", f"{tmp}/resnet0.safetensors",
                        *extra], check=True, env=env, capture_output=True, timeout=120)

    diffs = []
    ddp("resnet_infer", "--stop-after", "0", "--predict-out", f"{tmp}/r1.csv")
    with torch.no_grad():
        got = torch.tensor([r[:-1] for r in read_rows(f"{tmp}/r1.csv")])
        diffs.append((torch.softmax(model.eval()(x), dim=1) - got).abs().max().item())
    print(f"residual blocks PyTorch -> ddp-trainer, inference: max abs diff {diffs[-1]:.2e}")

    ddp("resnet_step", "--stop-after", "1", "--export-safetensors", f"{tmp}/resnet1.safetensors")
    diff, moved, norms = batch_norm_sgd_step(model, model, load_file(f"{tmp}/resnet1.safetensors"),
                                             train_x, train_y, 0.5)
    assert norms == 6, norms
    diffs.append(diff)
    print(f"residual blocks one SGD step (sync, 2 ranks) vs PyTorch: max abs diff "
          f"{diffs[-1]:.2e} (the step moved weights and statistics by up to {moved:.2e})")
    return diffs
