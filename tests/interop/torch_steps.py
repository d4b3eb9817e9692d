"""Training steps of one loss in ddp_train (2 ranks) and in PyTorch (in double) from the same
initial weights, for torch_interop.py (checks 6-8 there), and what both files share. Each loss is
checked with SGD too: Adam's step hardly changes when the loss is scaled by a constant, so Adam
alone would miss a loss off by a constant factor (a wrong mean, say)."""

import csv
import subprocess

import numpy
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


def twenty_steps(args, env, tmp, name, model, make_optimizer, loss_of, before_step=lambda: None):
    """20 steps of {tmp}/{name}.yaml on 2 ranks from `model`'s weights, and the same in PyTorch in
    double: batches of 20 rows in file order (10 per epoch), loss_of(rows) a batch's loss,
    before_step() between backward and the optimizer's step. The max abs difference of the
    weights after them."""
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, f"{tmp}/{name}0.safetensors")
    subprocess.run([args.mpiexec, "-n", "2", args.ddp_train, "--config", f"{tmp}/{name}.yaml",
                    "--run-dir", f"{tmp}/{name}_run", "--init-from", f"{tmp}/{name}0.safetensors",
                    "--stop-after", "20", "--export-safetensors", f"{tmp}/{name}20.safetensors"],
                   check=True, env=env, capture_output=True, timeout=120)
    stepped = load_file(f"{tmp}/{name}20.safetensors")
    model.double()
    optimizer = make_optimizer(model.parameters())
    for step in range(20):
        loss = loss_of(slice(step % 10 * 20, step % 10 * 20 + 20))
        optimizer.zero_grad()
        loss.backward()
        before_step()
        optimizer.step()
    after = {k: v.float() for k, v in model.state_dict().items()}
    return max((after[k] - stepped[k]).abs().max().item() for k in stepped)


# rule -> (learning rate, its other config keys, PyTorch's optimizer of the parameters p).
OPTIMIZERS = {
    "adam": (0.01, "", lambda p, lr: torch.optim.Adam(p, lr=lr)),
    "adamw": (0.01, ", weight_decay: 0.05",
              lambda p, lr: torch.optim.AdamW(p, lr=lr, weight_decay=0.05)),
    "sgd": (0.1, ", momentum: 0.9", lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9)),
    # PyTorch's default rate, 0.01, steps ~10x the rate at first: over 20 steps this small MLP's
    # trajectory then drifts 3-9e-5 between float32 and double, whatever the settings.
    "rmsprop": (0.001, ", momentum: 0.9, centered: true, weight_decay: 0.01",
                lambda p, lr: torch.optim.RMSprop(p, lr=lr, momentum=0.9, centered=True,
                                                  weight_decay=0.01)),
    "adagrad": (0.001, ", initial_accumulator_value: 0.1, weight_decay: 0.01",
                lambda p, lr: torch.optim.Adagrad(p, lr=lr, initial_accumulator_value=0.1,
                                                  weight_decay=0.01)),
    "adamax": (0.002, ", beta2: 0.99, weight_decay: 0.01",
               lambda p, lr: torch.optim.Adamax(p, lr=lr, betas=(0.9, 0.99), weight_decay=0.01)),
    # foreach: torch 1.13's single-tensor NAdam multiplies mu_t into its product twice in the
    # momentum's step size (fixed in 2.0, pytorch/pytorch#92699); its foreach form did not.
    "nadam": (0.002, ", weight_decay: 0.01",
              lambda p, lr: torch.optim.NAdam(p, lr=lr, weight_decay=0.01, foreach=True)),
}


def batch_norm_sgd_step(model, logits, stepped, train_x, train_y, lr):
    """ddp-trainer's one SGD step with batch normalization (`stepped`, its export) against
    PyTorch's from the same state in float64 (PyTorch's float32 BatchNorm over thousands of rows
    is itself ~3e-4 away from its float64 step; ddp-trainer sums in double). PyTorch's running
    variance moves by the unbiased batch variance (momentum 0.1, Keras' 0.9), ddp-trainer's by the
    biased one, as Keras': each BatchNorm's rows (samples x its input's pixels) turn one into the
    other. Returns (max abs difference, how far the step moved anything, the BatchNorms seen)."""
    start = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = model.load_state_dict(stepped, strict=False)
    assert all(k.endswith("num_batches_tracked") for k in loaded.missing_keys), loaded
    assert not loaded.unexpected_keys, loaded
    model.load_state_dict(start)
    model.double().train()
    rows_of = {}

    def count_rows(name):
        return lambda module, inputs: rows_of.__setitem__(name, inputs[0].numel() //
                                                          inputs[0].shape[1])

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(count_rows(name))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    torch.nn.functional.cross_entropy(logits(train_x.double()), train_y).backward()
    optimizer.step()
    after = {k: v.float() for k, v in model.state_dict().items()}
    for bn, rows in rows_of.items():
        batch_var = (after[bn + ".running_var"] - 0.9 * start[bn + ".running_var"]) / 0.1
        after[bn + ".running_var"] = (0.9 * start[bn + ".running_var"] +
                                      0.1 * batch_var * (rows - 1) / rows)
    moved = max((after[k] - start[k]).abs().max().item() for k in stepped)
    assert moved > 1e-3, f"one SGD step moved no weight by more than {moved}"
    return max((after[k] - stepped[k]).abs().max().item() for k in stepped), moved, len(rows_of)


def optimizer_yaml(rule, extra=""):
    rate, keys, _ = OPTIMIZERS[rule]
    return f"{{type: {rule}, learning_rate: {rate}{keys}{extra}}}"


def torch_optimizer(rule):
    rate, _, make = OPTIMIZERS[rule]
    return lambda p: make(p, rate)


def multilabel_checks(args, env, tmp, rule, clip=0.0):
    """rule: adam, adamw (decoupled weight decay 0.05) or sgd (momentum 0.9); clip:
    global_clipnorm (0: none)."""
    clipping_key = f", global_clipnorm: {clip}" if clip else ""
    torch.manual_seed(4)
    x = torch.rand(200, 10)
    y = ((x - 0.5) @ (torch.rand(10, 5) * 2 - 1) > 0).float()
    with open(f"{tmp}/ml.csv", "w") as f:
        f.write(",".join([f"f{i}" for i in range(10)] + [f"l{j}" for j in range(5)]) + "\n")
        for i in range(200):
            f.write(",".join([f"{v:.6f}" for v in x[i].tolist()] +
                             [str(int(v)) for v in y[i].tolist()]) + "\n")
    x = torch.tensor([r[:10] for r in read_rows(f"{tmp}/ml.csv")]).double()  # as read: float32
    pos_weight = [1.0, 2.0, 0.5, 1.5, 3.0]
    name = f"ml_{rule}_{clip}"
    with open(f"{tmp}/{name}.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: csv, path: {tmp}/ml.csv, label_columns: [-5, -4, -3, -2, -1]}}
model:
  layers:
    - {{type: dense, units: 16, activation: tanh, kernel_regularizer: {{l2: 0.01}}}}
    - {{type: dense, units: 5, activation: sigmoid}}
loss: {{type: binary_crossentropy, pos_weight: {pos_weight}}}
metrics: [f1]
optimizer: {optimizer_yaml(rule, clipping_key)}
training: {{epochs: 2, global_batch_size: 20, shuffle: false}}
""")
    model = Mlp([10, 16, 5])
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight, dtype=torch.float64))
    clipped = []

    def loss_of(rows):
        logits = model.layers[1](torch.tanh(model.layers[0](x[rows])))
        return loss_fn(logits, y[rows].double()) + 0.01 * (model.layers[0].weight ** 2).sum()

    def clip_step():
        if clip:
            clipped.append(torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item() > clip)

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer(rule), loss_of, clip_step)
    clipping = f", global_clipnorm {clip}: {sum(clipped)} of 20 steps clipped" if clip else ""
    print(f"multi-label, 20 {rule} steps (pos_weight, L2 penalty, 2 ranks{clipping}) vs PyTorch: "
          f"max abs diff {diff:.2e}")
    return [diff] + ([0.0 if any(clipped) else 1.0] if clip else [])


def categorical_check(args, env, tmp, rule, smoothing=0.1, class_weight=None):
    """The first check's data and MLP, 20 steps of categorical cross-entropy with label smoothing,
    or with class weights (Note [class weights], Keras' semantics: each sample's loss times its
    class's weight, summed over the batch and divided by its size, which is PyTorch's
    CrossEntropyLoss(weight, reduction="sum") over the batch size; its "mean" divides by the sum of
    the weights instead, and with label smoothing it weighs each class's term of a sample's loss,
    not the sample)."""
    rows = read_rows(f"{tmp}/train.csv")
    x = torch.tensor([r[:-1] for r in rows]).double()  # as ddp_train reads them: float32
    y = torch.tensor([int(r[-1]) for r in rows])
    name = f"cce_{rule}_{smoothing}" + ("_weighted" if class_weight else "")
    keys = f", label_smoothing: {smoothing}" if smoothing else ""
    keys += f", class_weight: {class_weight}" if class_weight else ""
    with open(f"{tmp}/{name}.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: csv, path: {tmp}/train.csv}}
model:
  layers:
    - {{type: dense, units: 16, activation: {ACTIVATIONS[0]}}}
    - {{type: dense, units: 12, activation: {ACTIVATIONS[1]}}}
    - {{type: dense, units: 4, activation: softmax}}
loss: {{type: categorical_crossentropy{keys}}}
optimizer: {optimizer_yaml(rule)}
training: {{epochs: 2, global_batch_size: 20, shuffle: false}}
""")
    torch.manual_seed(7)
    model = Mlp([6, 16, 12, 4])
    weight = torch.tensor(class_weight, dtype=torch.float64) if class_weight else None
    summed = torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing, reduction="sum")

    def loss_of(batch):
        hidden = x[batch]
        for layer, act in zip(model.layers[:-1], ACTIVATIONS):
            hidden = getattr(torch, act)(layer(hidden))
        return summed(model.layers[-1](hidden), y[batch]) / len(y[batch])

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer(rule), loss_of)
    what = f"class weights {class_weight}" if class_weight else f"label smoothing {smoothing}"
    print(f"categorical cross-entropy, {what}, 20 {rule} steps (2 ranks) vs PyTorch: "
          f"max abs diff {diff:.2e}")
    return [diff]


def regression_check(args, env, tmp, weighted=False):
    """20 SGD steps (momentum 0.9) of mean_squared_error on 2 real-valued targets (CSV,
    label_type: float) against torch.nn.MSELoss, from the same initial weights; `weighted`: with
    Keras' sample weights from a .npy file (Note [sample weights]: each sample's loss times its
    weight, the batch's sum over its size), against torch's per-sample losses times the weights."""
    torch.manual_seed(11)
    x = torch.rand(200, 10)
    y = torch.sin(2 * (x - 0.5) @ (torch.rand(10, 2) * 2 - 1))
    sample_weights = torch.rand(200) * 3  # float32, as the file holds them
    numpy.save(f"{tmp}/reg_w.npy", sample_weights.numpy())
    with open(f"{tmp}/reg.csv", "w") as f:
        f.write(",".join([f"f{i}" for i in range(10)] + ["t0", "t1"]) + "\n")
        for i in range(200):
            f.write(",".join(f"{v:.6f}" for v in x[i].tolist() + y[i].tolist()) + "\n")
    rows = read_rows(f"{tmp}/reg.csv")
    x = torch.tensor([r[:10] for r in rows]).double()  # as ddp_train reads them: float32
    y = torch.tensor([r[10:] for r in rows]).double()
    name = "reg_weighted" if weighted else "reg"
    weights_key = f", sample_weights: {tmp}/reg_w.npy" if weighted else ""
    with open(f"{tmp}/{name}.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: csv, path: {tmp}/reg.csv, label_columns: [-2, -1], label_type: float{weights_key}}}
model:
  layers:
    - {{type: dense, units: 16, activation: tanh}}
    - {{type: dense, units: 2}}
loss: mean_squared_error
optimizer: {optimizer_yaml("sgd")}
training: {{epochs: 2, global_batch_size: 20, shuffle: false}}
""")
    model = Mlp([10, 16, 2])
    per_element = torch.nn.MSELoss(reduction="none")
    w = sample_weights.double() if weighted else torch.ones(200, dtype=torch.float64)

    def loss_of(rows):
        pred = model.layers[1](torch.tanh(model.layers[0](x[rows])))
        return (per_element(pred, y[rows]).mean(dim=1) * w[rows]).mean()

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer("sgd"), loss_of)
    what = ", sample weights" if weighted else ""
    print(f"regression, 20 SGD steps of mean_squared_error (2 targets{what}, 2 ranks) vs PyTorch: "
          f"max abs diff {diff:.2e}")
    return [diff]


def activation_check(args, env, tmp, first, second):
    """The first check's data, an MLP whose hidden layers take activations `first` and `second`
    (Keras' names, run as layers of their own, Note [fused activations]), 20 SGD steps (momentum
    0.9) of sparse categorical cross-entropy on 2 ranks against torch.nn.functional's functions of
    the same names (PyTorch's exact GELU, ELU's alpha 1; leaky ReLU with Keras' slope 0.2, where
    PyTorch's default is 0.01; hard_sigmoid and hard_silu: Hardsigmoid and Hardswish; gelu_tanh:
    gelu(approximate="tanh")), from the same initial weights."""
    rows = read_rows(f"{tmp}/train.csv")
    x = torch.tensor([r[:-1] for r in rows]).double()  # as ddp_train reads them: float32
    y = torch.tensor([int(r[-1]) for r in rows])
    name = f"act_{first}_{second}"
    with open(f"{tmp}/{name}.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: csv, path: {tmp}/train.csv}}
model:
  layers:
    - {{type: dense, units: 16, activation: {first}}}
    - {{type: dense, units: 12, activation: {second}}}
    - {{type: dense, units: 4, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {optimizer_yaml("sgd")}
training: {{epochs: 2, global_batch_size: 20, shuffle: false}}
""")
    torch.manual_seed(13)
    model = Mlp([6, 16, 12, 4])
    F = torch.nn.functional
    # Keras' names PyTorch spells otherwise, and Keras' slope of leaky ReLU.
    keras_names = {"leaky_relu": lambda h: F.leaky_relu(h, 0.2), "hard_sigmoid": F.hardsigmoid,
                   "hard_silu": F.hardswish,
                   "gelu_tanh": lambda h: F.gelu(h, approximate="tanh")}
    functions = [keras_names[a] if a in keras_names else getattr(F, a) for a in (first, second)]
    mean = torch.nn.CrossEntropyLoss()

    def loss_of(batch):
        hidden = x[batch]
        for layer, function in zip(model.layers[:-1], functions):
            hidden = function(layer(hidden))
        return mean(model.layers[-1](hidden), y[batch])

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer("sgd"), loss_of)
    print(f"activations {first} and {second}, 20 SGD steps (2 ranks) vs PyTorch: "
          f"max abs diff {diff:.2e}")
    return [diff]


def layer_norm_mlp(tmp, name, rule, frozen):
    """The first check's data and an MLP with a layer_normalization (epsilon 1e-3) after its first
    dense layer, its gamma and beta drawn (not PyTorch's ones and zeros): writes {tmp}/{name}.yaml
    with optimizer `rule`, the first and third dense layers trainable: false when `frozen`
    (requires_grad_(False) in PyTorch), and returns PyTorch's model and a batch's loss."""
    rows = read_rows(f"{tmp}/train.csv")
    x = torch.tensor([r[:-1] for r in rows]).double()  # as ddp_train reads them: float32
    y = torch.tensor([int(r[-1]) for r in rows])
    freeze = ", trainable: false" if frozen else ""
    with open(f"{tmp}/{name}.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: csv, path: {tmp}/train.csv}}
model:
  layers:
    - {{type: dense, units: 16{freeze}}}
    - {{type: layer_normalization, epsilon: 0.001}}
    - {{type: tanh}}
    - {{type: dense, units: 12, activation: tanh{freeze}}}
    - {{type: dense, units: 4, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {optimizer_yaml(rule)}
training: {{epochs: 2, global_batch_size: 20, shuffle: false}}
""")
    torch.manual_seed(17)
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList([torch.nn.Linear(6, 16), torch.nn.LayerNorm(16, eps=1e-3),
                                        torch.nn.Linear(16, 12), torch.nn.Linear(12, 4)])
    with torch.no_grad():
        model.layers[1].weight.uniform_(0.5, 1.5)
        model.layers[1].bias.uniform_(-0.5, 0.5)
    if frozen:
        model.layers[0].requires_grad_(False)
        model.layers[2].requires_grad_(False)
    mean = torch.nn.CrossEntropyLoss()

    def loss_of(batch):
        hidden = torch.tanh(model.layers[1](model.layers[0](x[batch])))
        return mean(model.layers[3](torch.tanh(model.layers[2](hidden))), y[batch])

    return model, loss_of


def layer_norm_check(args, env, tmp):
    """layer_norm_mlp, 20 SGD steps (momentum 0.9) on 2 ranks against torch.nn.LayerNorm(eps=1e-3),
    from the same initial weights."""
    model, loss_of = layer_norm_mlp(tmp, "ln", "sgd", frozen=False)
    diff = twenty_steps(args, env, tmp, "ln", model, torch_optimizer("sgd"), loss_of)
    print(f"layer normalization, 20 SGD steps (2 ranks) vs PyTorch: max abs diff {diff:.2e}")
    return [diff]


def frozen_check(args, env, tmp):
    """layer_norm_mlp with its first and third dense layers frozen (Note [frozen layers]), 20
    AdamW steps on 2 ranks against PyTorch's layers with requires_grad_(False), whose weights
    AdamW's decay leaves alone as it does every weight without a gradient."""
    model, loss_of = layer_norm_mlp(tmp, "frozen", "adamw", frozen=True)
    frozen = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(("layers.0.", "layers.2."))}
    diff = twenty_steps(args, env, tmp, "frozen", model, torch_optimizer("adamw"), loss_of)
    stepped = load_file(f"{tmp}/frozen20.safetensors")
    kept = all(torch.equal(stepped[k], v.float()) for k, v in frozen.items())
    print(f"frozen layers, 20 AdamW steps (2 ranks) vs PyTorch's requires_grad_(False): max abs "
          f"diff {diff:.2e}; the frozen weights as they were: {kept}")
    return [diff if kept else float("inf")]
