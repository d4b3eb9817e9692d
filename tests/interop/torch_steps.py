"""Training steps of one loss in ddp_train (2 ranks) and in PyTorch (in double) from the same
initial weights, for torch_interop.py (checks 6-8 there), and what both files share. Each loss is
checked with SGD too: Adam's step hardly changes when the loss is scaled by a constant, so Adam
alone would miss a loss off by a constant factor (a wrong mean, say)."""

import copy
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
    PyTorch's default is 0.01; hard_sigmoid and hard_silu: Hardsigmoid and Hardswish), from the
    same initial weights."""
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
                   "hard_silu": F.hardswish}
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


def write_tokens(tmp):
    """200 rows of 6 token ids below 30 in {tmp}/tokens.csv, each labelled by how many of its ids
    are below 10, modulo 3; returns the ids and the labels."""
    generator = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, 30, (200, 6), generator=generator)
    labels = (tokens < 10).sum(dim=1) % 3
    with open(f"{tmp}/tokens.csv", "w") as f:
        f.write(",".join([f"t{i}" for i in range(6)] + ["label"]) + "\n")
        for row, label in zip(tokens.tolist(), labels.tolist()):
            f.write(",".join(map(str, row + [label])) + "\n")
    return tokens, labels


def write_token_config(tmp, name, middle):
    """{tmp}/{name}.yaml: tokens.csv through an embedding of 8, the layers `middle` (YAML lines),
    then a softmax layer of 3; Adam, 2 epochs of batches of 20 in file order."""
    with open(f"{tmp}/{name}.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: csv, path: {tmp}/tokens.csv}}
model:
  layers:
    - {{type: embedding, input_dim: 30, output_dim: 8}}
{middle}    - {{type: dense, units: 3, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {optimizer_yaml("adam")}
training: {{epochs: 2, global_batch_size: 20, shuffle: false}}
""")


def lstm_check(args, env, tmp, bidirectional=False):
    """Token ids through an embedding and two LSTMs (bidirectional: each both ways, its last step
    PyTorch's h_n of the two directions), the first returning every step, then a softmax layer,
    from PyTorch's draws. Its state_dict as saved goes in (each LSTM's bias_hh_l0 added
    into bias_ih_l0) and comes back out (bias_hh_l0 zero) for a strict load_state_dict predicting
    what it predicted. Then 20 Adam steps on 2 ranks against torch.nn.LSTM with its bias_hh_l0
    held at zero (two biases of one sum step twice as far as one)."""
    tokens, labels = write_tokens(tmp)
    both = ", bidirectional: true" if bidirectional else ""
    name = "bilstm" if bidirectional else "lstm"
    write_token_config(tmp, name, f"    - {{type: lstm, units: 6, return_sequences: true{both}}}\n"
                                  f"    - {{type: lstm, units: 5{both}}}\n")
    torch.manual_seed(9)
    model = torch.nn.Module()
    ways = 2 if bidirectional else 1
    model.layers = torch.nn.ModuleList(
        [torch.nn.Embedding(30, 8),
         torch.nn.LSTM(8, 6, batch_first=True, bidirectional=bidirectional),
         torch.nn.LSTM(6 * ways, 5, batch_first=True, bidirectional=bidirectional),
         torch.nn.Linear(5 * ways, 3)])
    summed = torch.nn.CrossEntropyLoss(reduction="sum")

    def logits(m, rows):
        steps, _ = m.layers[1](m.layers[0](tokens[rows]))
        _, (h_n, _) = m.layers[2](steps)  # each direction's last step: (directions, batch, 5)
        return m.layers[3](torch.cat(list(h_n), dim=1))

    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              f"{tmp}/{name}0.safetensors")
    subprocess.run([args.mpiexec, "-n", "2", args.ddp_train, "--config", f"{tmp}/{name}.yaml",
                    "--run-dir", f"{tmp}/{name}_io", "--init-from", f"{tmp}/{name}0.safetensors",
                    "--stop-after", "0", "--export-safetensors", f"{tmp}/{name}_io.safetensors"],
                   check=True, env=env, capture_output=True, timeout=120)
    exported = load_file(f"{tmp}/{name}_io.safetensors")
    reloaded = copy.deepcopy(model)
    reloaded.load_state_dict(exported)  # strict: every name of nn.LSTM's
    everything = slice(0, len(labels))
    with torch.no_grad():
        io_diff = (logits(reloaded, everything) - logits(model, everything)).abs().max().item()
    seconds = [k for k in exported if ".bias_hh_l0" in k]
    zero_second = len(seconds) == 2 * ways and all(not exported[k].any() for k in seconds)
    print(f"nn.LSTM{'(bidirectional)' if bidirectional else ''}'s state_dict in and out: "
          f"predictions within {io_diff:.2e}, bias_hh_l0 "
          f"exported as zero: {zero_second}")

    for second in seconds:  # layers.k.bias_hh_l0 and its _reverse
        bias = model.get_parameter(second)
        bias.data.zero_()
        bias.requires_grad_(False)

    def loss_of(rows):
        return summed(logits(model, rows), labels[rows]) / len(labels[rows])

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer("adam"), loss_of)
    print(f"embedding and two {'bidirectional ' if bidirectional else ''}LSTMs, 20 Adam steps "
          f"(2 ranks) vs PyTorch: max abs diff {diff:.2e}")
    return [io_diff if zero_second else float("inf"), diff]


def embedding_check(args, env, tmp, pooling, conv=False, windowed=None):
    """Token ids through an embedding, with conv a relu Conv1D of 6 filters of 3 tokens (same
    padding), with windowed a {windowed}_pooling1d of 2 steps, averaged (pooling "average") or
    maxed ("max") over the steps (global_{pooling}_pooling1d), then a softmax layer: 20 Adam steps
    on 2 ranks against torch.nn.Embedding (and nn.Conv1d, max_pool1d or avg_pool1d over the
    channels-first transpose) and a mean or amax over the steps, from the same weights (PyTorch's
    draws)."""
    tokens, labels = write_tokens(tmp)
    name = f"emb_{pooling}" + ("_conv" if conv else "") + (f"_{windowed}" if windowed else "")
    layers = ["{type: conv1d, filters: 6, kernel_size: 3, padding: same, activation: relu}"] * conv
    layers += [f"{{type: {windowed}_pooling1d, pool_size: 2}}"] * bool(windowed)
    layers += [f"{{type: global_{pooling}_pooling1d}}"]
    write_token_config(tmp, name, "".join(f"    - {layer}\n" for layer in layers))
    torch.manual_seed(8)
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList(
        [torch.nn.Embedding(30, 8)] + ([torch.nn.Conv1d(8, 6, 3, padding=1)] if conv else []) +
        [torch.nn.Linear(6 if conv else 8, 3)])
    summed = torch.nn.CrossEntropyLoss(reduction="sum")

    def loss_of(rows):
        steps = model.layers[0](tokens[rows])  # (batch, steps, channels)
        if conv:
            steps = torch.relu(model.layers[1](steps.transpose(1, 2))).transpose(1, 2)
        if windowed:
            window = getattr(torch.nn.functional, {"max": "max", "average": "avg"}[windowed] +
                             "_pool1d")
            steps = window(steps.transpose(1, 2), 2).transpose(1, 2)
        pooled = steps.mean(dim=1) if pooling == "average" else steps.amax(dim=1)
        return summed(model.layers[-1](pooled), labels[rows]) / len(labels[rows])

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer("adam"), loss_of)
    print(f"embedding{', conv1d' if conv else ''}{f', {windowed} pooling' if windowed else ''} "
          f"and the {pooling} over the steps, 20 Adam steps "
          f"(2 ranks) vs PyTorch: max abs diff {diff:.2e}")
    return [diff]
