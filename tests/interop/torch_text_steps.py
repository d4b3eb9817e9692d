"""Token models in ddp_train (2 ranks) and in PyTorch (in double) from the same initial weights, for
torch_interop.py: embeddings with convolutions and poolings over the steps, stacked LSTMs,
GRUs or SimpleRNNs (nn.RNN) one way or both (with PyTorch's state_dict in and out), transformer
encoders, and a tag per token."""

import copy
import subprocess

import torch
from safetensors.torch import load_file, save_file

from torch_steps import optimizer_yaml, torch_optimizer, twenty_steps


def write_tokens(tmp, padded=False):
    """200 rows of 6 token ids below 30 in {tmp}/tokens.csv, each labelled by how many of its ids
    are below 10, modulo 3; returns the ids and the labels. padded: {tmp}/padded.csv, texts of 2
    to 6 ids from 1 up, then id 0 to the end (and how many ids are real, third)."""
    generator = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, 30, (200, 6), generator=generator)
    lengths = torch.randint(2, 7, (200,), generator=generator)
    if padded:
        tokens = torch.where(torch.arange(6) < lengths[:, None], tokens.clamp(min=1), 0)
    labels = (tokens < 10).sum(dim=1) % 3
    with open(f"{tmp}/{'padded' if padded else 'tokens'}.csv", "w") as f:
        f.write(",".join([f"t{i}" for i in range(6)] + ["label"]) + "\n")
        for row, label in zip(tokens.tolist(), labels.tolist()):
            f.write(",".join(map(str, row + [label])) + "\n")
    return (tokens, labels, lengths) if padded else (tokens, labels)


def write_token_config(tmp, name, middle, padded=False):
    """{tmp}/{name}.yaml: tokens.csv (padded: padded.csv, the embedding with mask_zero) through an
    embedding of 8, the layers `middle` (YAML lines), then a softmax layer of 3; Adam, 2 epochs of
    batches of 20 in file order."""
    with open(f"{tmp}/{name}.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: csv, path: {tmp}/{'padded' if padded else 'tokens'}.csv}}
model:
  layers:
    - {{type: embedding, input_dim: 30, output_dim: 8, mask_zero: {str(padded).lower()}}}
{middle}    - {{type: dense, units: 3, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {optimizer_yaml("adam")}
training: {{epochs: 2, global_batch_size: 20, shuffle: false}}
""")


def round_trip(args, env, tmp, name, model):
    """`model`'s state_dict as saved through ddp_train on 2 ranks ({tmp}/{name}.yaml): in with
    --init-from, out of --export-safetensors untrained; the tensors that came out."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              f"{tmp}/{name}0.safetensors")
    subprocess.run([args.mpiexec, "-n", "2", args.ddp_train, "--config", f"{tmp}/{name}.yaml",
                    "--run-dir", f"{tmp}/{name}_io", "--init-from", f"{tmp}/{name}0.safetensors",
                    "--stop-after", "0", "--export-safetensors", f"{tmp}/{name}_io.safetensors"],
                   check=True, env=env, capture_output=True, timeout=120)
    return load_file(f"{tmp}/{name}_io.safetensors")


def recurrent_check(args, env, tmp, cell="lstm", bidirectional=False, activation="tanh",
                    padded=False):
    """Token ids through an embedding and two LSTMs, GRUs or SimpleRNNs (`cell`: lstm, gru or
    simple_rnn, whose nn.RNN takes `activation`, tanh or relu; bidirectional: each both ways, its
    last step PyTorch's h_n of the two directions), the first returning every step, then a softmax
    layer, from PyTorch's draws. Its state_dict as saved goes in and comes back out for a strict
    load_state_dict predicting what it predicted: an LSTM's or RNN's bias_hh_l0 added into its
    bias_ih_l0 and exported as zero, a GRU's two biases kept (r scales bias_hh_l0's n block alone).
    Then 20 Adam steps on 2 ranks against torch.nn.LSTM or nn.RNN with its bias_hh_l0 held at zero
    (two biases of one sum step twice as far as one), or torch.nn.GRU as it is. padded: texts
    padded at the end with id 0, the embedding's mask_zero against PyTorch's
    pack_padded_sequence (Note [padding masks])."""
    tokens, labels, *lengths = write_tokens(tmp, padded)
    both = ", bidirectional: true" if bidirectional else ""
    if cell == "simple_rnn":
        both += f", activation: {activation}"
    name = ("bi" if bidirectional else "") + cell + ("_padded" if padded else "")
    write_token_config(tmp, name, f"    - {{type: {cell}, units: 6, return_sequences: true{both}}}\n"
                                  f"    - {{type: {cell}, units: 5{both}}}\n", padded)
    # Seed 9's one-way GRU draws an embedding gradient of -2.3e-9 (four tokens' cancelling) in
    # the first batch: near Adam's epsilon, its float32 rounding moves that step by 6e-5.
    torch.manual_seed(10 if cell == "gru" else 9)
    model = torch.nn.Module()
    ways = 2 if bidirectional else 1
    layer = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU,
             "simple_rnn": lambda *a, **k: torch.nn.RNN(*a, nonlinearity=activation, **k)}[cell]
    model.layers = torch.nn.ModuleList(
        [torch.nn.Embedding(30, 8),
         layer(8, 6, batch_first=True, bidirectional=bidirectional),
         layer(6 * ways, 5, batch_first=True, bidirectional=bidirectional),
         torch.nn.Linear(5 * ways, 3)])
    summed = torch.nn.CrossEntropyLoss(reduction="sum")

    def logits(m, rows):
        steps = m.layers[0](tokens[rows])
        if padded:  # each text's real steps alone, through both layers
            steps = torch.nn.utils.rnn.pack_padded_sequence(
                steps, lengths[0][rows], batch_first=True, enforce_sorted=False)
        steps, _ = m.layers[1](steps)
        _, h_n = m.layers[2](steps)  # each direction's last step: (directions, batch, 5)
        h_n = h_n[0] if cell == "lstm" else h_n  # the LSTM's (h_n, c_n)
        return m.layers[3](torch.cat(list(h_n), dim=1))

    exported = round_trip(args, env, tmp, name, model)
    reloaded = copy.deepcopy(model)
    reloaded.load_state_dict(exported)  # strict: every name of nn.LSTM's, nn.GRU's or nn.RNN's
    everything = slice(0, len(labels))
    with torch.no_grad():
        io_diff = (logits(reloaded, everything) - logits(model, everything)).abs().max().item()
    seconds = [k for k in exported if ".bias_hh_l0" in k]
    folded = cell != "gru"  # an LSTM's or RNN's two biases of one sum
    if folded:
        seconds_right = len(seconds) == 2 * ways and all(not exported[k].any() for k in seconds)
        told = f"bias_hh_l0 exported as zero: {seconds_right}"
    else:
        seconds_right = len(seconds) == 2 * ways and all(
            torch.equal(exported[k], model.state_dict()[k]) for k in seconds)
        told = f"bias_hh_l0 exported as it was: {seconds_right}"
    print(f"nn.{type(model.layers[1]).__name__}{'(bidirectional)' if bidirectional else ''}"
          f"{f' ({activation})' if cell == 'simple_rnn' else ''}'s state_dict in and out: "
          f"predictions within {io_diff:.2e}, {told}")

    for second in seconds if folded else []:  # layers.k.bias_hh_l0 and its _reverse
        bias = model.get_parameter(second)
        bias.data.zero_()
        bias.requires_grad_(False)

    def loss_of(rows):
        return summed(logits(model, rows), labels[rows]) / len(labels[rows])

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer("adam"), loss_of)
    print(f"embedding{' (mask_zero, packed)' if padded else ''} and two "
          f"{'bidirectional ' if bidirectional else ''}{type(model.layers[1]).__name__}s, 20 Adam "
          f"steps (2 ranks) vs PyTorch: max abs diff {diff:.2e}")
    return [io_diff if seconds_right else float("inf"), diff]


def embedding_check(args, env, tmp, pooling, conv=False, windowed=None, causal_dilation=0):
    """Token ids through an embedding, with conv a relu Conv1D of 6 filters of 3 tokens (same
    padding; with causal_dilation Keras' causal padding and that dilation_rate, PyTorch's
    dilation after padding the start), with windowed a {windowed}_pooling1d of 2 steps, averaged (pooling "average") or
    maxed ("max") over the steps (global_{pooling}_pooling1d), then a softmax layer: 20 Adam steps
    on 2 ranks against torch.nn.Embedding (and nn.Conv1d, max_pool1d or avg_pool1d over the
    channels-first transpose) and a mean or amax over the steps, from the same weights (PyTorch's
    draws)."""
    tokens, labels = write_tokens(tmp)
    name = (f"emb_{pooling}" + ("_conv" if conv else "") + (f"_{windowed}" if windowed else "") +
            (f"_causal{causal_dilation}" if causal_dilation else ""))
    padding = (f"causal, dilation_rate: {causal_dilation}" if causal_dilation else "same")
    layers = [f"{{type: conv1d, filters: 6, kernel_size: 3, padding: {padding}, "
              "activation: relu}"] * conv
    layers += [f"{{type: {windowed}_pooling1d, pool_size: 2}}"] * bool(windowed)
    layers += [f"{{type: global_{pooling}_pooling1d}}"]
    write_token_config(tmp, name, "".join(f"    - {layer}\n" for layer in layers))
    torch.manual_seed(8)
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList(
        [torch.nn.Embedding(30, 8)] +
        ([torch.nn.Conv1d(8, 6, 3, padding=0 if causal_dilation else 1,
                          dilation=max(causal_dilation, 1))] if conv else []) +
        [torch.nn.Linear(6 if conv else 8, 3)])
    summed = torch.nn.CrossEntropyLoss(reduction="sum")

    def loss_of(rows):
        steps = model.layers[0](tokens[rows])  # (batch, steps, channels)
        if conv:
            channels_first = steps.transpose(1, 2)
            if causal_dilation:  # the kernel's span less one, all before the first step
                channels_first = torch.nn.functional.pad(channels_first, (2 * causal_dilation, 0))
            steps = torch.relu(model.layers[1](channels_first)).transpose(1, 2)
        if windowed:
            window = getattr(torch.nn.functional, {"max": "max", "average": "avg"}[windowed] +
                             "_pool1d")
            steps = window(steps.transpose(1, 2), 2).transpose(1, 2)
        pooled = steps.mean(dim=1) if pooling == "average" else steps.amax(dim=1)
        return summed(model.layers[-1](pooled), labels[rows]) / len(labels[rows])

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer("adam"), loss_of)
    print(f"embedding{', conv1d' if conv else ''}"
          f"{f' (causal, dilation {causal_dilation})' if causal_dilation else ''}"
          f"{f', {windowed} pooling' if windowed else ''} "
          f"and the {pooling} over the steps, 20 Adam steps "
          f"(2 ranks) vs PyTorch: max abs diff {diff:.2e}")
    return [diff]


class Positions(torch.nn.Module):
    """position_embedding: a learned (steps, features) table added to each sample."""

    def __init__(self, steps, features):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.rand(steps, features) - 0.5)

    def forward(self, x):
        return x + self.weight


def transformer_check(args, env, tmp, normalize_first=False, padded=False):
    """Token ids through an embedding, with normalize_first learned positions (position_embedding)
    and a transformer_encoder of 2 heads whose normalizations come before each branch, else
    the encoder alone, and the average over the steps, then a softmax layer: its
    state_dict in and out, and 20 Adam steps on 2 ranks against torch.nn.TransformerEncoderLayer
    (batch_first, dropout 0, norm_first) from the same weights (PyTorch's draws). padded: texts
    padded at the end with id 0, the embedding's mask_zero against PyTorch's src_key_padding_mask
    and an average over the real steps."""
    tokens, labels, *lengths = write_tokens(tmp, padded)
    name = "transformer" + ("_first" if normalize_first else "") + ("_padded" if padded else "")
    first = ", normalize_first: true" if normalize_first else ""
    write_token_config(tmp, name, "    - {type: position_embedding}\n" * normalize_first +
                                  "    - {type: transformer_encoder, num_heads: 2, "
                                  f"intermediate_dim: 12{first}}}\n"
                                  "    - {type: global_average_pooling1d}\n", padded)
    torch.manual_seed(12)
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList(
        [torch.nn.Embedding(30, 8)] + [Positions(6, 8)] * normalize_first +
        [torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0,
                                          batch_first=True, norm_first=normalize_first),
         torch.nn.Linear(8, 3)])
    summed = torch.nn.CrossEntropyLoss(reduction="sum")

    def logits(m, rows):
        pad = tokens[rows] == 0 if padded else None
        steps = m.layers[0](tokens[rows])
        if normalize_first:
            steps = m.layers[1](steps)
        steps = m.layers[-2](steps, src_key_padding_mask=pad)
        if padded:
            real = (~pad).to(steps.dtype).unsqueeze(2)
            return m.layers[-1]((steps * real).sum(dim=1) / real.sum(dim=1))
        return m.layers[-1](steps.mean(dim=1))

    reloaded = copy.deepcopy(model)
    reloaded.load_state_dict(round_trip(args, env, tmp, name, model))  # strict: every name
    everything = slice(0, len(labels))
    with torch.no_grad():
        io_diff = (logits(reloaded, everything) - logits(model, everything)).abs().max().item()

    def loss_of(rows):
        return summed(logits(model, rows), labels[rows]) / len(labels[rows])

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer("adam"), loss_of)
    print(f"embedding, {'positions, ' * normalize_first}transformer encoder"
          f"{' (norm_first)' if normalize_first else ''}"
          f"{' (padded: src_key_padding_mask)' if padded else ''} and the average over the steps:"
          f" state_dict in and out, predictions within {io_diff:.2e}; 20 Adam steps (2 ranks) vs "
          f"PyTorch: max abs diff {diff:.2e}")
    return [io_diff, diff]


def tagging_check(args, env, tmp, causal=False, padded=False, ignored=False):
    """A tag per token (Note [targets per position]): 200 rows of 6 ids below 30 in {tmp}/tags.csv,
    each token tagged by how many of it and the token before it are below 10 (0-2), through an
    embedding, a bidirectional LSTM returning every step (causal: learned positions and a causal
    transformer encoder of 2 heads, against PyTorch's with the square subsequent mask) and a
    softmax layer at each step: 20 SGD steps with momentum on 2 ranks (whose step is the
    gradient's own scale, where Adam's would hide a wrong one) against PyTorch's
    CrossEntropyLoss over (batch x steps, classes), the mean over every token of the batch.
    padded (causal only): texts of 2 to 6 ids in [1, 30) padded with id 0, tagged 0, under
    mask_zero (Note [masked positions]), against src_key_padding_mask and CrossEntropyLoss's
    ignore_index at the padding, the mean over the batch's real tokens. ignored: a third of the
    tags -100, left out by loss.ignore_class against CrossEntropyLoss's ignore_index."""
    generator = torch.Generator().manual_seed(6)
    tokens = torch.randint(1 if padded else 0, 30, (200, 6), generator=generator)
    if padded:
        lengths = torch.randint(2, 7, (200, 1), generator=generator)
        tokens = torch.where(torch.arange(6) < lengths, tokens, torch.zeros_like(tokens))
    low = (tokens < 10).long()
    tags = low + torch.cat([torch.zeros(200, 1, dtype=torch.long), low[:, :-1]], dim=1)
    tags = torch.where(tokens == 0, torch.zeros_like(tags), tags) if padded else tags
    if ignored:
        tags = torch.where(torch.rand(200, 6, generator=generator) < 0.3,
                           torch.full_like(tags, -100), tags)
    with open(f"{tmp}/tags.csv", "w") as f:
        f.write(",".join([f"t{i}" for i in range(6)] + [f"tag{i}" for i in range(6)]) + "\n")
        for row in torch.cat([tokens, tags], dim=1).tolist():
            f.write(",".join(map(str, row)) + "\n")
    name = (("padded_" if padded else "") + ("ignored_" if ignored else "") +
            ("causal_tagging" if causal else "tagging"))
    middle = ("    - {type: position_embedding}\n"
              "    - {type: transformer_encoder, num_heads: 2, intermediate_dim: 12, causal: true}\n"
              if causal else
              "    - {type: lstm, units: 6, return_sequences: true, bidirectional: true}\n")
    with open(f"{tmp}/{name}.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: csv, path: {tmp}/tags.csv, label_columns: [6, 7, 8, 9, 10, 11]}}
model:
  layers:
    - {{type: embedding, input_dim: 30, output_dim: 8, mask_zero: {str(padded).lower()}}}
{middle}    - {{type: dense, units: 3, activation: softmax}}
loss: {{type: sparse_categorical_crossentropy{", ignore_class: -100" if ignored else ""}}}
optimizer: {optimizer_yaml("sgd")}
training: {{epochs: 2, global_batch_size: 20, shuffle: false}}
""")
    torch.manual_seed(13)
    model = torch.nn.Module()
    later = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1)  # True: not attended
    if causal:
        model.layers = torch.nn.ModuleList(
            [torch.nn.Embedding(30, 8), Positions(6, 8),
             torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=12, dropout=0.0,
                                              batch_first=True),
             torch.nn.Linear(8, 3)])
    else:
        model.layers = torch.nn.ModuleList(
            [torch.nn.Embedding(30, 8), torch.nn.LSTM(8, 6, batch_first=True, bidirectional=True),
             torch.nn.Linear(12, 3)])
        for second in ("layers.1.bias_hh_l0", "layers.1.bias_hh_l0_reverse"):  # one bias (Keras')
            model.get_parameter(second).data.zero_()
            model.get_parameter(second).requires_grad_(False)
    mean = torch.nn.CrossEntropyLoss(ignore_index=-100)
    targets = torch.where(tokens == 0, torch.full_like(tags, -100), tags) if padded else tags

    def loss_of(rows):
        steps = model.layers[0](tokens[rows])
        if causal:
            padding = tokens[rows] == 0 if padded else None
            steps = model.layers[2](model.layers[1](steps), src_mask=later,
                                    src_key_padding_mask=padding)
        else:
            steps, _ = model.layers[1](steps)
        return mean(model.layers[-1](steps).reshape(-1, 3), targets[rows].reshape(-1))

    diff = twenty_steps(args, env, tmp, name, model, torch_optimizer("sgd"), loss_of)
    left_out = ", a third of them -100 (ignore_class)" if ignored else ""
    print(f"a tag per {'real ' if padded else ''}token{left_out} (embedding"
          f"{' with mask_zero over padded texts' if padded else ''}, "
          f"{'positions, a causal transformer encoder' if causal else 'bidirectional LSTM'}, a "
          f"softmax layer at each step), 20 SGD steps with momentum (2 ranks) vs PyTorch's mean "
          f"over every {'real ' if padded else ''}{'other ' if ignored else ''}token: max abs "
          f"diff {diff:.2e}")
    return [diff]
