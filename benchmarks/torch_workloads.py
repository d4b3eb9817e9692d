#!/usr/bin/python3
"""The benchmark workloads W1-W3 in PyTorch, for benchmarks/compare_pytorch.py: same shapes,
batch, optimizer and data as configs/w*.yaml, one thread per process, DDP with gloo for several
ranks (per-rank batch fixed). Prints one JSON object (rank 0).
  torch_workloads.py --workload w2 --ranks 2 --steps 300 --warmup 50 [--ftz]
  torch_workloads.py --workload w2 --time-to-accuracy 0.88 --threads 2     (epochs + test eval)"""

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

FMNIST = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndims = data[3]
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    return torch.frombuffer(bytearray(data[4 + 4 * ndims:]), dtype=torch.uint8).reshape(dims)


def workload(name):
    g = torch.Generator().manual_seed(0)
    if name == "w1":
        x, y = torch.rand(1000, 10, generator=g), torch.randint(0, 10, (1000,), generator=g)
        sizes, opt, batch = [10, 64, 64, 10], ("adam", 1e-3), 32
    elif name == "w2":
        x = read_idx(f"{FMNIST}/train-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
        y = read_idx(f"{FMNIST}/train-labels-idx1-ubyte.gz").long()
        sizes, opt, batch = [784, 512, 256, 10], ("adam", 1e-3), 128
    else:
        x, y = torch.rand(8192, 1024, generator=g), torch.randint(0, 10, (8192,), generator=g)
        sizes, opt, batch = [1024, 2048, 2048, 2048, 2048, 10], ("sgd", 1e-2), 64
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    return x, y, model, opt, batch


def make_optimizer(model, opt):
    kind, lr = opt
    if kind == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def throughput(rank, world, args, port):
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.ftz)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    x, y, model, opt, batch = workload(args.workload)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    optimizer = make_optimizer(model, opt)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(rank)
    n = x.shape[0]

    def run(steps):
        perm, at = torch.randperm(n, generator=g), 0
        for _ in range(steps):
            if at + batch > n:
                perm, at = torch.randperm(n, generator=g), 0
            idx = perm[at:at + batch]
            at += batch
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            optimizer.step()

    run(args.warmup)
    if world > 1:
        dist.barrier()
    start = time.perf_counter()
    run(args.steps)
    if world > 1:
        dist.barrier()
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if rank == 0:
        print(json.dumps({"framework": f"torch {torch.__version__}", "workload": args.workload,
                          "world_size": world, "threads": args.threads, "ftz": args.ftz,
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


def time_to_accuracy(args):
    """W2 trained by epochs with test evaluation after each, until test accuracy >= target."""
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.ftz)
    start = time.perf_counter()
    x, y, model, opt, batch = workload("w2")
    tx = read_idx(f"{FMNIST}/t10k-images-idx3-ubyte.gz").reshape(-1, 784).float() / 255
    ty = read_idx(f"{FMNIST}/t10k-labels-idx1-ubyte.gz").long()
    optimizer = make_optimizer(model, opt)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    for epoch in range(1, 31):
        perm = torch.randperm(x.shape[0], generator=g)
        for at in range(0, x.shape[0] - batch + 1, batch):
            idx = perm[at:at + batch]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            optimizer.step()
        with torch.no_grad():
            accuracy = (model(tx).argmax(1) == ty).float().mean().item()
        if accuracy >= args.time_to_accuracy:
            break
    print(json.dumps({"framework": f"torch {torch.__version__}", "threads": args.threads,
                      "epochs": epoch, "test_accuracy": accuracy,
                      "seconds": time.perf_counter() - start}))


def seed_job():
    """The canonical example end to end: 10 epochs of 1000 samples, batch 32, Adam."""
    torch.set_num_threads(1)
    x, y, model, opt, batch = workload("w1")
    optimizer = make_optimizer(model, opt)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(10):
        perm = torch.randperm(1000)
        for at in range(0, 1000, batch):
            idx = perm[at:at + batch]
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            optimizer.step()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", choices=["w1", "w2", "w3"], default="w2")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--ftz", action="store_true")
    p.add_argument("--time-to-accuracy", type=float)
    p.add_argument("--port", type=int, default=29533)
    p.add_argument("--seed-job", action="store_true")
    args = p.parse_args()
    if args.seed_job:
        seed_job()
    elif args.time_to_accuracy:
        time_to_accuracy(args)
    elif args.ranks == 1:
        throughput(0, 1, args, args.port)
    else:
        mp.spawn(throughput, args=(args.ranks, args, args.port), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    sys.exit(main())
