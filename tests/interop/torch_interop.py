#!/usr/bin/python3
"""PyTorch interop, both directions, through the official `safetensors` package:
  1. ddp_train trains a model and exports it; PyTorch loads the weights strictly into a ModuleList
     of nn.Linear and predicts the 100 test samples: max abs diff to ddp_train's own predictions
     (--predict-out) <= 1e-5.
  2. PyTorch writes a freshly initialized model; ddp_train --init-from it and predicts the same
     samples without training: max abs diff to PyTorch's predictions <= 1e-5.
  3. The same both ways for a convnet on (6, 6, 3) images (conv2d 3 -> 16 same + relu, conv2d
     16 -> 16 same + relu, average pooling, conv2d 16 -> 4 valid + tanh, flatten, dropout,
     dense): Note [PyTorch layout] turns NHWC weights into nn.Conv2d's and the flattened Dense
     layer's NCHW order. The three convolutions take the CPU backend's three paths: direct
     kernels (few input channels), Winograd (3x3, stride 1, whole vectors of 16) and oneDNN or
     im2col + GEMM.
  4. Gradients: from PyTorch's initial convnet (without dropout), one SGD step on all 200 samples
     in ddp_train (2 ranks) and in PyTorch: the same weights within 1e-5, i.e. the same
     convolution, pooling and Dense gradients.
  5. Batch normalization (BatchNorm2d after a convolution, BatchNorm1d after a Dense layer), from
     a PyTorch state_dict saved as it is (num_batches_tracked included) with random running
     statistics: the same inference outputs; one SGD step on 200 samples with sync: true on 2
     ranks: the same weights (training-mode batch statistics and their gradients) and running
     statistics (Keras' momentum 0.9 is PyTorch's 0.1; ddp-trainer's running variance is the
     biased one, as Keras', PyTorch's the unbiased). Again with the convolution and the Dense
     layer before batch normalization without a bias (use_bias: false; PyTorch's bias=False).
  6. Multi-label: 20 Adam steps of binary_crossentropy with pos_weight and an L2 kernel penalty on
     2 ranks (CSV with 5 label columns) against torch.nn.BCEWithLogitsLoss(pos_weight) plus
     0.01 * sum(w^2), from the same initial weights: the same weights within 1e-5; the same with
     AdamW (weight_decay 0.05) against torch.optim.AdamW, and with Adam and global_clipnorm
     against torch.nn.utils.clip_grad_norm_ (which must have clipped some of the steps), and
     with SGD (momentum 0.9), whose steps, unlike Adam's, scale with the loss.
  7. Label smoothing: 20 Adam and 20 SGD steps of categorical_crossentropy with label_smoothing
     0.1 on 2 ranks against torch.nn.CrossEntropyLoss(label_smoothing=0.1), from the same initial
     weights: the same weights within 1e-5; with class weights (Note [class weights]) against
     CrossEntropyLoss(weight, reduction="sum") over the batch size.
  8. Regression: 20 SGD steps (momentum 0.9) of mean_squared_error on 2 real-valued targets (CSV
     label_type: float) on 2 ranks against torch.nn.MSELoss: the same weights within 1e-5.
  9. Activations: 20 SGD steps of MLPs with GELU (exact and tanh), SiLU, ELU, SELU, softplus,
     softsign, leaky ReLU, ReLU6, hard sigmoid, hard SiLU and Mish hidden layers on 2 ranks
     against torch.nn.functional's: the same weights within 1e-5.
 10. Layer normalization: 20 SGD steps on 2 ranks against torch.nn.LayerNorm: the same weights
     within 1e-5.
 11. Frozen layers (trainable: false): 20 AdamW steps on 2 ranks against layers with
     requires_grad_(False): the same weights within 1e-5, the frozen ones bit for bit.
 12. Residual blocks (torch_residual.py): a small ResNet (an identity block, a strided one with a
     projection shortcut, batch normalization in both branches) from a PyTorch state_dict with
     random running statistics: the same inference outputs; one SGD step with sync: true on 2
     ranks: the same weights and running statistics.
Needs torch and safetensors (Debian python3-torch; pip safetensors). CTest registers it only when
/usr/bin/python3 can import both; otherwise CMake says so.
  tests/interop/torch_interop.py --ddp-train build/ddp_train --mpiexec mpiexec"""

import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

from torch_steps import (ACTIVATIONS, Mlp, activation_check, batch_norm_sgd_step,
                         categorical_check, frozen_check,
                         layer_norm_check, multilabel_checks, read_rows, regression_check)
from torch_residual import residual_check
from torch_text_steps import embedding_check, recurrent_check, tagging_check, transformer_check

def image_data_yaml(tmp):
    """The start of a convnet config on ctrain.csv / ctest.csv: (6, 6, 3) images, layers follow."""
    return f"""data:
  train: {{type: csv, path: {tmp}/ctrain.csv}}
  test: {{type: csv, path: {tmp}/ctest.csv}}
model:
  input: [6, 6, 3]
  layers:"""


def features_and_labels(path):
    """A CSV written here, label last: (features, class indices) as tensors."""
    rows = read_rows(path)
    return torch.tensor([r[:-1] for r in rows]), torch.tensor([int(r[-1]) for r in rows])


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
        diffs = [diff1, diff2] + convnet_checks(args, env, tmp)
        for bias in (True, False):
            diffs += batch_norm_checks(args, env, tmp, bias)
        diffs += residual_check(args, env, tmp, image_data_yaml(tmp))
        diffs += multilabel_checks(args, env, tmp, "adam")
        diffs += multilabel_checks(args, env, tmp, "adamw")
        diffs += multilabel_checks(args, env, tmp, "adam", clip=0.1)
        diffs += multilabel_checks(args, env, tmp, "sgd")
        diffs += categorical_check(args, env, tmp, "adam")
        diffs += categorical_check(args, env, tmp, "sgd")
        for rule in ("rmsprop", "adagrad", "adamax", "nadam"):
            diffs += categorical_check(args, env, tmp, rule)
        diffs += categorical_check(args, env, tmp, "sgd", 0, class_weight=[0.5, 2.0, 1.0, 3.0])
        diffs += regression_check(args, env, tmp)
        diffs += regression_check(args, env, tmp, weighted=True)
        for first, second in (("gelu", "silu"), ("elu", "selu"), ("softplus", "softsign"),
                              ("leaky_relu", "gelu_tanh"), ("relu6", "hard_sigmoid"),
                              ("hard_silu", "mish")):
            diffs += activation_check(args, env, tmp, first, second)
        diffs += layer_norm_check(args, env, tmp)
        diffs += frozen_check(args, env, tmp)
        for pooling in ("average", "max"):
            diffs += embedding_check(args, env, tmp, pooling)
        diffs += embedding_check(args, env, tmp, "max", conv=True)
        diffs += embedding_check(args, env, tmp, "average", conv=True, windowed="max")
        diffs += embedding_check(args, env, tmp, "max", windowed="average")
        diffs += embedding_check(args, env, tmp, "average", conv=True, causal_dilation=2)
        for cell in ("lstm", "gru"):
            diffs += recurrent_check(args, env, tmp, cell)
            diffs += recurrent_check(args, env, tmp, cell, bidirectional=True)
        diffs += recurrent_check(args, env, tmp, "simple_rnn")
        diffs += recurrent_check(args, env, tmp, "simple_rnn", bidirectional=True,
                                 activation="relu")
        diffs += recurrent_check(args, env, tmp, "lstm", bidirectional=True, padded=True)
        diffs += recurrent_check(args, env, tmp, "gru", padded=True)
        diffs += transformer_check(args, env, tmp)
        diffs += transformer_check(args, env, tmp, normalize_first=True, padded=True)
        diffs += tagging_check(args, env, tmp)
        diffs += tagging_check(args, env, tmp, causal=True)
        diffs += tagging_check(args, env, tmp, causal=True, padded=True)
        diffs += tagging_check(args, env, tmp, ignored=True)
    failed = sum(d > 1e-5 for d in diffs)
    print(f"torch interop ({torch.__version__}): {len(diffs) - failed} passed, {failed} failed")
    return 0 if failed == 0 else 1


class Convnet(torch.nn.Module):
    """ddp-trainer's convnet in PyTorch: NCHW images, the same layers in order (ddp-trainer's
    bilinear up_sampling2d is nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
    its conv2d_transpose of padding valid nn.ConvTranspose2d without padding, both with
    output_padding 1)."""

    def __init__(self, dropout):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Conv2d(3, 16, 3, padding=1),
                                           torch.nn.Conv2d(16, 16, 3, padding=1),
                                           torch.nn.Conv2d(16, 4, 2),
                                           torch.nn.ConvTranspose2d(4, 3, 3, stride=2,
                                                                    output_padding=1),
                                           torch.nn.Linear(432, 4)])
        self.dropout = torch.nn.Dropout(dropout)

    def logits(self, x):  # x: (N, 108) as ddp-trainer reads it, NHWC
        x = x.view(-1, 6, 6, 3).permute(0, 3, 1, 2)
        x = torch.relu(self.layers[1](torch.relu(self.layers[0](x))))
        x = torch.nn.functional.avg_pool2d(x, 2)
        x = torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)(x)
        x = torch.relu(self.layers[3](torch.tanh(self.layers[2](x))))  # 5x5 up to 12x12
        return self.layers[4](self.dropout(torch.flatten(x, 1)))

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)


def convnet_checks(args, env, tmp):
    torch.manual_seed(1)
    data = torch.rand(300, 108)
    labels = (data[:, :54].sum(1) * 2).long() % 4
    for name, rows in (("ctrain", range(200)), ("ctest", range(200, 300))):
        with open(f"{tmp}/{name}.csv", "w") as f:
            f.write(",".join(f"f{i}" for i in range(108)) + ",label\n")
            for i in rows:
                f.write(",".join(f"{v:.6f}" for v in data[i].tolist()) + f",{labels[i]}\n")
    x, _ = features_and_labels(f"{tmp}/ctest.csv")
    train_x, train_y = features_and_labels(f"{tmp}/ctrain.csv")

    def config(name, dropout, optimizer, batch):
        with open(f"{tmp}/{name}.yaml", "w") as f:
            f.write(image_data_yaml(tmp) + f"""
    - {{type: conv2d, filters: 16, kernel_size: 3, padding: same, activation: relu}}
    - {{type: conv2d, filters: 16, kernel_size: 3, padding: same, activation: relu}}
    - {{type: average_pooling2d, pool_size: 2}}
    - {{type: up_sampling2d, size: 2, interpolation: bilinear}}
    - {{type: conv2d, filters: 4, kernel_size: 2, activation: tanh}}
    - {{type: conv2d_transpose, filters: 3, kernel_size: 3, strides: 2, output_padding: 1,
       activation: relu}}
    - {{type: flatten}}
    - {{type: dropout, rate: {dropout}}}
    - {{type: dense, units: 4, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {optimizer}
training: {{epochs: 3, global_batch_size: {batch}}}
""")

    def ddp(name, run, *extra):
        subprocess.run([args.mpiexec, "-n", "2", args.ddp_train, "--config", f"{tmp}/{name}.yaml",
                        "--run-dir", f"{tmp}/{run}", *extra], check=True, env=env,
                       capture_output=True, timeout=120)

    diffs = []
    config("cnn", 0.2, "{type: adam, learning_rate: 0.01}", 20)
    ddp("cnn", "cnn_trained", "--export-safetensors", f"{tmp}/cnn.safetensors", "--predict-out",
        f"{tmp}/c1.csv")
    model = Convnet(0.2).eval()
    model.load_state_dict(load_file(f"{tmp}/cnn.safetensors"), strict=True)
    with torch.no_grad():
        diffs.append((model(x) - torch.tensor([r[:-1] for r in read_rows(f"{tmp}/c1.csv")]))
                     .abs().max().item())
    print(f"convnet ddp-trainer -> PyTorch: max abs diff {diffs[-1]:.2e}")

    fresh = Convnet(0.0)
    save_file({k: v.contiguous() for k, v in fresh.state_dict().items()}, f"{tmp}/cnn0.safetensors")
    ddp("cnn", "cnn_from_torch", "--init-from", f"{tmp}/cnn0.safetensors", "--stop-after", "0",
        "--predict-out", f"{tmp}/c2.csv")
    with torch.no_grad():
        diffs.append((fresh(x) - torch.tensor([r[:-1] for r in read_rows(f"{tmp}/c2.csv")]))
                     .abs().max().item())
    print(f"convnet PyTorch -> ddp-trainer: max abs diff {diffs[-1]:.2e}")

    config("cnn_sgd", 0.0, "{type: sgd, learning_rate: 0.5}", 200)
    ddp("cnn_sgd", "cnn_step", "--init-from", f"{tmp}/cnn0.safetensors", "--stop-after", "1",
        "--export-safetensors", f"{tmp}/cnn1.safetensors")
    stepped = load_file(f"{tmp}/cnn1.safetensors")
    start = {k: v.clone() for k, v in fresh.state_dict().items()}
    optimizer = torch.optim.SGD(fresh.parameters(), lr=0.5)
    torch.nn.functional.cross_entropy(fresh.logits(train_x), train_y).backward()
    optimizer.step()
    moved = max((fresh.state_dict()[k] - start[k]).abs().max().item() for k in start)
    assert moved > 1e-3, f"one SGD step moved no weight by more than {moved}"
    diffs.append(max((fresh.state_dict()[k] - stepped[k]).abs().max().item() for k in start))
    print(f"convnet one SGD step, ddp-trainer vs PyTorch: max abs diff {diffs[-1]:.2e} "
          f"(the step moved weights by up to {moved:.2e})")
    return diffs


class BatchNormNet(torch.nn.Module):
    """conv2d -> batch_normalization -> relu -> depthwise_conv2d (a 3x3 kernel a channel, Note
    [depthwise convolution]: nn.Conv2d's groups) -> average pooling -> flatten -> dense ->
    batch_normalization -> tanh -> dense, as ddp-trainer's layers.<k> name them; the layers before
    batch normalization with or without a bias."""

    def __init__(self, bias):
        super().__init__()
        self.layers = torch.nn.ModuleList([
            torch.nn.Conv2d(3, 5, 3, padding=1, bias=bias), torch.nn.BatchNorm2d(5, momentum=0.1),
            torch.nn.Conv2d(5, 5, 3, padding=1, groups=5),
            torch.nn.Linear(45, 6, bias=bias), torch.nn.BatchNorm1d(6, momentum=0.1),
            torch.nn.Linear(6, 4)])

    def logits(self, x):  # x: (N, 108) as ddp-trainer reads it, NHWC
        x = x.view(-1, 6, 6, 3).permute(0, 3, 1, 2)
        x = self.layers[2](torch.relu(self.layers[1](self.layers[0](x))))
        x = torch.nn.functional.avg_pool2d(x, 2)
        x = torch.tanh(self.layers[4](self.layers[3](torch.flatten(x, 1))))
        return self.layers[5](x)

    def forward(self, x):
        return torch.softmax(self.logits(x), dim=1)


def batch_norm_checks(args, env, tmp, bias):
    """Uses the convnet checks' ctrain.csv and ctest.csv."""
    x, _ = features_and_labels(f"{tmp}/ctest.csv")
    train_x, train_y = features_and_labels(f"{tmp}/ctrain.csv")
    use_bias = "true" if bias else "false"
    with open(f"{tmp}/bn.yaml", "w") as f:
        f.write(image_data_yaml(tmp) + f"""
    - {{type: conv2d, filters: 5, kernel_size: 3, padding: same, use_bias: {use_bias}}}
    - {{type: batch_normalization, momentum: 0.9, epsilon: 0.00001, sync: true}}
    - {{type: relu}}
    - {{type: depthwise_conv2d, kernel_size: 3, padding: same}}
    - {{type: average_pooling2d, pool_size: 2}}
    - {{type: flatten}}
    - {{type: dense, units: 6, use_bias: {use_bias}}}
    - {{type: batch_normalization, momentum: 0.9, epsilon: 0.00001, sync: true}}
    - {{type: tanh}}
    - {{type: dense, units: 4, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {{type: sgd, learning_rate: 0.5}}
training: {{epochs: 1, global_batch_size: 200}}
""")
    torch.manual_seed(2)
    model = BatchNormNet(bias)
    with torch.no_grad():
        for bn in (model.layers[1], model.layers[4]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, f"{tmp}/bn0.safetensors")

    def ddp(run, *extra):
        subprocess.run([args.mpiexec, "-n", "2", args.ddp_train, "--config", f"{tmp}/bn.yaml",
                        "--run-dir", f"{tmp}/{run}", "--init-from", f"{tmp}/bn0.safetensors",
                        *extra], check=True, env=env, capture_output=True, timeout=120)

    diffs = []
    run = "bn_bias" if bias else "bn_no_bias"
    ddp(f"{run}_infer", "--stop-after", "0", "--predict-out", f"{tmp}/b1.csv")
    with torch.no_grad():
        diffs.append((model.eval()(x) - torch.tensor([r[:-1] for r in read_rows(f"{tmp}/b1.csv")]))
                     .abs().max().item())
    print(f"batch norm (bias={bias}) PyTorch -> ddp-trainer, inference: max abs diff "
          f"{diffs[-1]:.2e}")

    ddp(f"{run}_step", "--stop-after", "1", "--export-safetensors", f"{tmp}/bn1.safetensors")
    diff, moved, norms = batch_norm_sgd_step(model, model.logits,
                                             load_file(f"{tmp}/bn1.safetensors"), train_x,
                                             train_y, 0.5)
    assert norms == 2, norms
    diffs.append(diff)
    print(f"batch norm (bias={bias}) one SGD step (sync, 2 ranks) vs PyTorch: max abs diff "
          f"{diffs[-1]:.2e} "
          f"(the step moved weights and statistics by up to {moved:.2e})")
    return diffs


if __name__ == "__main__":
    sys.exit(main())
