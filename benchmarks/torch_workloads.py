#!/usr/bin/python3
"""The benchmark workloads W1-W8 in PyTorch, for benchmarks/compare_pytorch.py: same shapes,
batch, optimizer and data as configs/w*.yaml. Every variant a PyTorch expert would try is a flag:
the optimizer's implementation (--opt default|foreach|fused), torch.compile (--compile, inductor),
channels-last convolutions (--channels-last, W4 and W8), bf16 products (--bf16 medium:
set_float32_matmul_precision("medium"), fp32 tensors and bf16 matmuls as ddp-trainer's
training.bf16_matmul; --bf16 autocast: torch.autocast's bf16 layers), denormals flushed (--ftz), threads per process, DDP over gloo for several ranks, and the CPUs each
process is pinned to (--cpus 0,1: rank r gets the r-th; one process with several threads gets all).
Prints one JSON object (rank 0).
  torch_workloads.py --probe                                   (which variants this torch has)
  torch_workloads.py --workload w2 --ranks 2 --steps 300 --warmup 50 --cpus 0,1 [--ftz] ...
  torch_workloads.py --workload w2 --frozen 1 ...              (fine-tuning: the first layer frozen)
  torch_workloads.py --seed-job                                (the canonical example, end to end)
  torch_workloads.py --export-init F --seed S [--workload w4]  (W2's or W4's weights, PyTorch's
                                                                default init)
  torch_workloads.py --time-to-accuracy 0.88 --init-from F ... (epochs + test evaluation; W2, or
                                                                W4 with --workload w4)"""

import argparse
import gzip
import json
import os
import re
import resource
import struct
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from torch_resnet import fashion_mnist_resnet

FMNIST = os.environ.get("FMNIST_DIR", "/usr/share/datasets/fashion-mnist")
SIZES = {"w1": [10, 64, 64, 10], "w2": [784, 512, 256, 10],
         "w3": [1024, 2048, 2048, 2048, 2048, 10]}


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    return torch.frombuffer(bytearray(data[4 + 4 * ndims:]), dtype=torch.uint8).reshape(dims)


def fashion_mnist(split):
    x = read_idx(f"{FMNIST}/{split}-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
    return x, read_idx(f"{FMNIST}/{split}-labels-idx1-ubyte.gz").long()


class Mlp(torch.nn.Module):
    """Dense layers with relu between them; parameter names are ddp-trainer's (Note [parameter
    names]: layers.<k>.weight / bias), so weights travel both ways through safetensors."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(i, o) for i, o in zip(sizes, sizes[1:]))

    def forward(self, x):
        for layer in self.layers[:-1]:
            x = torch.relu(layer(x))
        return self.layers[-1](x)  # logits: CrossEntropyLoss applies the softmax


class Cnn(torch.nn.Module):
    """W4, configs/fashion_mnist_cnn.yaml: conv 32 3x3 same + relu, 2x2 max pooling, conv 64 3x3
    same + relu, 2x2 max pooling, dense 128 relu, dropout 0.3, dense 10; parameter names as
    ddp-trainer's (layers.<k>: the layers with parameters, in order)."""

    def __init__(self, channels_last=False):
        super().__init__()
        self.layers = torch.nn.ModuleList([
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.Conv2d(32, 64, 3, padding=1),
            torch.nn.Linear(64 * 7 * 7, 128), torch.nn.Linear(128, 10)])
        self.dropout = torch.nn.Dropout(0.3)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def forward(self, x):  # x: (N, 784)
        x = x.view(-1, 1, 28, 28).contiguous(memory_format=self.memory_format)
        for conv in self.layers[:2]:
            x = torch.nn.functional.max_pool2d(torch.relu(conv(x)), 2)
        x = self.dropout(torch.relu(self.layers[2](torch.flatten(x, 1))))
        return self.layers[3](x)


class TextRecurrent(torch.nn.Module):
    """W5 and W6, configs/w5_text_lstm.yaml and w6_text_gru.yaml: token ids -> embedding 16 ->
    LSTM or GRU (`cell`) 32 (the last step's output) -> dense 4; parameter names as ddp-trainer's
    (layers.<k>)."""

    def __init__(self, cell):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Embedding(500, 16),
                                           cell(16, 32, batch_first=True),
                                           torch.nn.Linear(32, 4)])

    def forward(self, x):  # x: (N, 40) token ids
        steps, _ = self.layers[1](self.layers[0](x))
        return self.layers[2](steps[:, -1])


class TextTransformer(torch.nn.Module):
    """W7, configs/w7_text_transformer.yaml: token ids -> embedding 32 -> learned positions ->
    nn.TransformerEncoderLayer (4 heads, feed-forward 64, dropout 0.1, batch_first) -> the mean
    over the steps -> dense 4; parameter names as ddp-trainer's (layers.<k>)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([
            torch.nn.Embedding(500, 32), torch.nn.Embedding(40, 32),  # the positions' table
            torch.nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.1,
                                             batch_first=True),
            torch.nn.Linear(32, 4)])

    def forward(self, x):  # x: (N, 40) token ids
        steps = self.layers[0](x) + self.layers[1].weight
        return self.layers[3](self.layers[2](steps).mean(dim=1))


def workload(name, channels_last=False):
    g = torch.Generator().manual_seed(0)
    if name in ("w5", "w6", "w7"):  # synthetic texts as their configs: 8,000 of 40 ids below 500
        x, y = torch.randint(0, 500, (8000, 40), generator=g), torch.randint(0, 4, (8000,),
                                                                             generator=g)
        if name == "w7":
            return x, y, TextTransformer(), ("adam", 1e-3), 64
        cell = torch.nn.LSTM if name == "w5" else torch.nn.GRU
        return x, y, TextRecurrent(cell), ("adam", 5e-3), 64
    if name == "w1":
        x, y = torch.rand(1000, 10, generator=g), torch.randint(0, 10, (1000,), generator=g)
        opt, batch = ("adam", 1e-3), 32
    elif name == "w2":
        (x, y), opt, batch = fashion_mnist("train"), ("adam", 1e-3), 128
    elif name == "w4":
        model = Cnn(channels_last)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return (*fashion_mnist("train"), model, ("adam", 1e-3), 64)
    elif name == "w8":  # configs/fashion_mnist_resnet.yaml
        return (*fashion_mnist("train"), fashion_mnist_resnet(channels_last), ("adam", 2e-3), 64)
    else:
        x, y = torch.rand(8192, 1024, generator=g), torch.randint(0, 10, (8192,), generator=g)
        opt, batch = ("sgd", 1e-2), 64
    return x, y, Mlp(SIZES[name]), opt, batch


def make_optimizer(params, opt, impl, **extra):
    kind, lr = opt
    if impl != "default":
        extra[impl] = True
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, **extra)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, **extra)


def setup(args, rank=0):
    if args.cpus:
        cpus = [int(c) for c in args.cpus.split(",")]
        os.sched_setaffinity(0, {cpus[rank]} if args.ranks > 1 else set(cpus))
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.ftz)
    if args.bf16 == "medium":
        torch.set_float32_matmul_precision("medium")


def variant(args):
    return {"framework": f"torch {torch.__version__}", "opt": args.opt, "compile": args.compile,
            "channels_last": args.channels_last, "bf16": args.bf16,
            "ftz": args.ftz, "threads": args.threads, "ranks": args.ranks, "frozen": args.frozen,
            "cpus": sorted(os.sched_getaffinity(0)),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "detected by OpenBLAS")}


def train_step_fn(model, optimizer, loss_fn, autocast=False):
    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return step


def throughput(rank, world, args, port):
    setup(args, rank)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    x, y, model, opt, batch = workload(args.workload, args.channels_last)
    batch = args.batch or batch
    for layer in model.layers[:args.frozen] if args.frozen else []:  # fine-tuning's frozen layers
        layer.requires_grad_(False)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = make_optimizer([q for q in model.parameters() if q.requires_grad], opt, args.opt)
    forward = torch.compile(model) if args.compile else model
    step = train_step_fn(forward, optimizer, torch.nn.CrossEntropyLoss(),
                         autocast=args.bf16 == "autocast")
    g = torch.Generator().manual_seed(rank)
    n = x.shape[0]

    def run(steps):
        perm, at = torch.randperm(n, generator=g), 0
        for _ in range(steps):
            if at + batch > n:
                perm, at = torch.randperm(n, generator=g), 0
            idx = perm[at:at + batch]
            at += batch
            step(x[idx], y[idx])

    run(args.warmup)  # compilation, if any, happens here
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    run(args.steps)
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if rank == 0:
        print(json.dumps({**variant(args), "workload": args.workload, "batch_per_rank": batch,
                          "samples_per_sec": args.steps * batch * world / seconds,
                          "step_ms": seconds * 1e3 / args.steps, "peak_rss_mb_rank0": rss,
                          "blas": blas_info()}))
    if world > 1:
        dist.destroy_process_group()


def blas_info():
    """The BLAS torch was built for, and the BLAS libraries mapped into this process: Debian's
    torch uses libblas.so.3, whichever alternative is installed (the reference BLAS is ~25x slower
    than OpenBLAS); PyPI's links MKL statically. numpy's own OpenBLAS and cuBLAS are not torch's."""
    built = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line
                and "cublas" not in line and "numpy" not in line}
    return f"{built.group(1) if built else '?'} ({', '.join(sorted(libs)) or 'statically linked'})"


def probe():
    """Which optimizer implementations and whether torch.compile work here, on CPU."""
    model, x, y = Mlp([4, 8, 3]), torch.rand(5, 4), torch.randint(0, 3, (5,))
    found = {"framework": f"torch {torch.__version__}", "blas": blas_info()}
    for impl in ("foreach", "fused"):
        try:
            for opt in (("adam", 1e-3), ("sgd", 1e-3)):
                train_step_fn(model, make_optimizer(model.parameters(), opt, impl),
                              torch.nn.CrossEntropyLoss())(x, y)
            found[impl] = True
        except (RuntimeError, TypeError):
            found[impl] = False
    found["compile"] = hasattr(torch, "compile")
    try:  # bf16 layers on the CPU
        train_step_fn(model, make_optimizer(model.parameters(), ("adam", 1e-3), "default"),
                      torch.nn.CrossEntropyLoss(), autocast=True)(x, y)
        found["bf16"] = True
    except RuntimeError:
        found["bf16"] = False
    print(json.dumps(found))


def tta_model(name, channels_last=False):
    """The model of a time-to-accuracy run: W2's MLP or W4's convnet."""
    if name == "w4":
        model = Cnn(channels_last)
        return model.to(memory_format=torch.channels_last) if channels_last else model
    return Mlp(SIZES["w2"])


def export_init(path, seed, name):
    """W2's or W4's initial weights as PyTorch initializes them, seeded, for both sides of a
    time-to-accuracy run (ddp-trainer reads them with --init-from, converting the layout)."""
    from safetensors.torch import save_file
    torch.manual_seed(seed)
    save_file({k: v.contiguous() for k, v in tta_model(name).state_dict().items()}, path)


def time_to_accuracy(args):
    """W2 by epochs from the given initial weights, test evaluation after each, until test
    accuracy >= target; reports the wall-clock time (time.time()) when that epoch ended, so the
    caller measures from the moment it started this process."""
    from safetensors.torch import load_file
    setup(args)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    (x, y), (tx, ty) = fashion_mnist("train"), fashion_mnist("t10k")
    x, y, tx, ty = x.to(device), y.to(device), tx.to(device), ty.to(device)
    model = tta_model(args.workload, args.channels_last)
    model.load_state_dict(load_file(args.init_from), strict=True)
    model.to(device)
    optimizer = make_optimizer(model.parameters(), ("adam", 1e-3), args.opt)
    forward = torch.compile(model) if args.compile else model
    step = train_step_fn(forward, optimizer, torch.nn.CrossEntropyLoss())
    batch = args.batch or 128
    accuracies = []
    for epoch in range(1, args.epochs + 1):
        model.train()  # W4's dropout
        perm = torch.randperm(x.shape[0], device=device)
        for at in range(0, x.shape[0], batch):  # the last batch partial, like ddp-trainer's
            idx = perm[at:at + batch]
            step(x[idx], y[idx])
        model.eval()
        with torch.no_grad():  # in chunks: W4's activations for 10,000 images would take 1 GB
            correct = sum((model(tx[at:at + 1000]).argmax(1) == ty[at:at + 1000]).sum().item()
                          for at in range(0, tx.shape[0], 1000))
        accuracy = correct / tx.shape[0]
        accuracies.append(accuracy)
        if accuracy >= args.time_to_accuracy:
            break
    print(json.dumps({**variant(args), "epochs": epoch, "test_accuracy": accuracy,
                      "reached": accuracy >= args.time_to_accuracy, "end_unix_time": time.time(),
                      "accuracies": accuracies}))


def seed_job(args):
    """The canonical example end to end: 10 epochs of 1000 samples, batch 32, Adam."""
    setup(args)
    x, y, model, opt, batch = workload("w1")
    optimizer = make_optimizer(model.parameters(), opt, args.opt)
    forward = torch.compile(model) if args.compile else model
    step = train_step_fn(forward, optimizer, torch.nn.CrossEntropyLoss())
    for _ in range(10):
        perm = torch.randperm(1000)
        for at in range(0, 1000, batch):
            idx = perm[at:at + batch]
            step(x[idx], y[idx])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", choices=["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"],
                   default="w2")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cpus", default="", help="comma-separated CPUs to pin to")
    p.add_argument("--batch", type=int, default=0, help="per-rank batch (default: the workload's)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--ftz", action="store_true")
    p.add_argument("--opt", choices=["default", "foreach", "fused"], default="default")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--frozen", type=int, default=0,
                   help="MLPs: the first this many Linear layers frozen (requires_grad_(False))")
    p.add_argument("--channels-last", action="store_true", help="W4, W8: NHWC convolutions")
    p.add_argument("--bf16", choices=["none", "medium", "autocast"], default="none",
                   help="bf16 products: matmul precision 'medium', or autocast")
    p.add_argument("--port", type=int, default=29533)
    p.add_argument("--probe", action="store_true")
    p.add_argument("--seed-job", action="store_true")
    p.add_argument("--export-init")
    p.add_argument("--init-from")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-to-accuracy", type=float)
    p.add_argument("--epochs", type=int, default=30, help="time to accuracy: the most epochs")
    p.add_argument("--device", default="cpu", help="time to accuracy: cpu or cuda")
    args = p.parse_args()
    if args.probe:
        probe()
    elif args.export_init:
        export_init(args.export_init, args.seed, args.workload)
    elif args.seed_job:
        seed_job(args)
    elif args.time_to_accuracy:
        time_to_accuracy(args)
    elif args.ranks == 1:
        throughput(0, 1, args, args.port)
    else:
        mp.spawn(throughput, args=(args.ranks, args, args.port), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    sys.exit(main())
