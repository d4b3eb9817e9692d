#!/usr/bin/env python3
"""W2 and W3 on one GPU (issue #19): ddp-trainer's CUDA backend against PyTorch CUDA in FP32 and
TF32, and W2's time to 88% test accuracy from the same initial weights. Runs where PyTorch has
CUDA (the device tool's image); ddp-trainer's side is the ddp_bench and ddp_train of --build
(tests/gpu/unpack_on_device.sh's wrappers on a machine without our build dependencies).

Throughput: one PyTorch process holds every variant (eager with the default optimizer, eager with
the fused one, the whole step captured in a CUDA graph, torch.compile + fused) and runs ddp_bench as
a child between them, in rounds ordered by benchmarks/alternation.py; each measurement is
`--steps` steps after warm-up, timed with the GPU synchronized at both ends; both sides keep the
data on the GPU's terms (PyTorch: the whole training set resident on the GPU, its best case).
  compare_gpu.py --build /opt/ddp/build --reps 5 --out DIR [--commit C] [--no-compile]
                 [--baseline LABEL=DDP_BENCH]   (another build's ddp_bench in the same rounds)
  compare_gpu.py --out DIR --render-log LOG LIKE_JSON COMMIT DATE NOTE   (a run that crashed)"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import provenance  # noqa: E402
import torch_workloads as tw  # noqa: E402
from alternation import round_orders  # noqa: E402
from compare_report import spread  # noqa: E402
from time_to_accuracy import train_to_target  # noqa: E402

CONFIGS = {"w2": "configs/w2_fmnist_mlp.yaml", "w3": "configs/w3_wide_mlp.yaml"}
PRECISIONS = ("fp32", "tf32")


def set_precision(precision):
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"


def gpu_data(name):
    x, y, _, opt, batch = tw.workload(name)
    return x.cuda(), y.cuda(), opt, batch


def torch_variant(kind, name, data):
    """A callable running `steps` training steps of one PyTorch variant on the GPU (batches drawn
    on the GPU from a permutation made there), after its warm-up; None if this torch lacks it."""
    x, y, opt, batch = data
    model = tw.Mlp(tw.SIZES[name]).cuda()
    loss_fn = torch.nn.CrossEntropyLoss()
    impl = "default" if kind == "eager" else "fused"
    extra = {"capturable": True} if kind == "graph" and opt[0] == "adam" else {}
    optimizer = tw.make_optimizer(model.parameters(), opt, impl, **extra)
    forward = torch.compile(model) if kind == "compile" else model
    n = x.shape[0]
    index = torch.zeros(batch, dtype=torch.long, device="cuda")
    state = {"perm": torch.randperm(n, device="cuda"), "at": 0}

    def next_index():
        if state["at"] + batch > n:
            state["perm"], state["at"] = torch.randperm(n, device="cuda"), 0
        index.copy_(state["perm"][state["at"]:state["at"] + batch])
        state["at"] += batch

    def step():
        optimizer.zero_grad(set_to_none=kind != "graph")
        loss_fn(forward(x.index_select(0, index)), y.index_select(0, index)).backward()
        optimizer.step()

    run_step = step
    if kind == "graph":  # PyTorch's recipe: warm up on a side stream, then capture one step
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                next_index()
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        run_step = graph.replay

    def run(steps):
        for _ in range(steps):
            next_index()
            run_step()

    return run


def timed(run, steps, batch):
    torch.cuda.synchronize()
    start = time.perf_counter()
    run(steps)
    torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def ours(bench, name, precision, fmnist, args):
    out = os.path.join(tempfile.gettempdir(), f"compare_gpu_{name}_{precision}.json")
    cmd = [bench, "--config", CONFIGS[name],
           "--set", "training.device=cuda",
           "--set", f"training.tf32={'true' if precision == 'tf32' else 'false'}",
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--json", out]
    if name == "w2":
        cmd += ["--set", f"data.train.images={fmnist}/train-images-idx3-ubyte.gz",
                "--set", f"data.train.labels={fmnist}/train-labels-idx1-ubyte.gz"]
    subprocess.run(cmd, check=True, cwd=provenance.ROOT, capture_output=True, timeout=300)
    with open(out) as f:
        return json.load(f)["samples_per_sec"]


def throughput_rows(args, fmnist, log, rows):
    """Fills `rows` row by row (the caller saves what a crash would otherwise lose)."""
    kinds = ["eager", "eager fused", "graph"] + ([] if args.no_compile else ["compile"])
    for name in ("w2", "w3"):
        data = gpu_data(name)
        for precision in PRECISIONS:
            set_precision(precision)
            runners = {"ours": lambda: ours(os.path.join(args.build, "ddp_bench"), name, precision,
                                            fmnist, args)}
            for label, bench in args.baseline:
                runners[label] = lambda bench=bench: ours(bench, name, precision, fmnist, args)
            for kind in kinds:
                try:
                    run = torch_variant(kind, name, data)
                    run(args.warmup)
                    runners[f"torch {kind}"] = lambda run=run: timed(run, args.steps, data[3])
                except Exception as error:  # a variant this torch cannot run is reported, not fatal
                    log(f"  torch {kind} on {name} {precision}: not run ({error!r:.200})")
            names = list(runners)
            runs = {k: [] for k in names}
            for r, order in enumerate(round_orders(len(names), args.reps)):
                for i in order:
                    runs[names[i]].append(runners[names[i]]())
                log(f"  {name} {precision} round {r + 1}/{args.reps}: " +
                    ", ".join(f"{k} {v[-1]:,.0f}" for k, v in runs.items()))
            rows[f"{name} {precision}"] = runs
            log(None)  # a row done: save
            torch.cuda.empty_cache()


def time_to_accuracy(args, fmnist, log):
    """W2 to 88% test accuracy, both from PyTorch's initial weights of each seed, one clock each
    from process start to the end of the epoch (evaluation included) that reached it."""
    runs = {"ours": [], "torch eager fused": []}
    for seed in range(args.tta_seeds):
        init = os.path.join(tempfile.gettempdir(), f"w2_init_{seed}.safetensors")
        tw.export_init(init, seed, "w2")
        data = [f"--set=data.{split}.{kind}={fmnist}/{file}-{kind}-idx{dims}-ubyte.gz"
                for split, file in (("train", "train"), ("test", "t10k"))
                for kind, dims in (("images", 3), ("labels", 1))]
        hit = train_to_target([os.path.join(args.build, "ddp_train"), "--config",
                               "configs/fashion_mnist_mlp.yaml", "--run-dir",
                               os.path.join(tempfile.gettempdir(), f"tta_ours_{seed}"),
                               "--init-from", init, "--set", "training.device=cuda",
                               "--set", "training.epochs=30",
                               "--set", "training.batch_size_per_rank=128", *data],
                              os.path.join(tempfile.gettempdir(), f"tta_ours_{seed}"), 0.88)
        runs["ours"].append(hit if hit["seconds"] is not None else None)
        start = time.time()
        out = subprocess.run([sys.executable, os.path.join(provenance.ROOT, "benchmarks",
                                                           "torch_workloads.py"),
                              "--time-to-accuracy", "0.88", "--init-from", init,
                              "--seed", str(seed), "--opt", "fused", "--device", "cuda",
                              "--threads", str(os.cpu_count())],
                             check=True, capture_output=True, text=True, timeout=300).stdout
        r = json.loads(out[out.index("{"):])
        runs["torch eager fused"].append({"seconds": r["end_unix_time"] - start,
                                          "epochs": r["epochs"]} if r["reached"] else None)
        log(f"  seed {seed}: ours {runs['ours'][-1]}, torch {runs['torch eager fused'][-1]}")
    return runs


def fmt(v):
    return f"{v:,.0f}"


def from_log(path, like, commit, date, note):
    """A result rebuilt from a run's log (its round lines), for a run that ended before writing its
    JSON; the machine fields from `like`, another run's JSON on the same kind of machine."""
    with open(like) as f:
        result = {k: v for k, v in json.load(f).items()
                  if k in ("gpu", "cpu", "torch", "steps", "warmup")}
    rows, reps = {}, 0
    with open(path) as f:
        for line in f:
            head, sep, tail = line.strip().partition(": ")
            if " round " not in head or not sep:
                continue
            row, _, count = head.partition(" round ")
            reps = max(reps, int(count.split("/")[1]))
            for item in tail.split(", "):
                name, _, value = item.rpartition(" ")
                rows.setdefault(row, {}).setdefault(name, []).append(float(value.replace(",", "")))
    return {**result, "commit": commit, "date": date, "reps": reps, "throughput": rows,
            "note": note}


def render(result):
    lines = ["# W2 and W3 on one GPU: ddp-trainer against PyTorch CUDA",
             "", f"Commit {result['commit']}, {result['date']}; GPU {result['gpu']}; CPU "
             f"{result['cpu']}; {result['torch']}; {result['reps']} alternated rounds of "
             f"{result['steps']} steps each, median (min-max) samples/s.",
             *(["", result["note"]] if result.get("note") else []), "",
             "| row | ours | fastest PyTorch | ours / fastest | every other variant |",
             "|---|---|---|---|---|"]
    for row, runs in result["throughput"].items():
        medians = {k: statistics.median(v) for k, v in runs.items() if k.startswith("torch")}
        best = max(medians, key=medians.get)
        lines.append(f"| {row} | {spread(runs['ours'], fmt)} | {best} {fmt(medians[best])} | "
                     f"{statistics.median(runs['ours']) / medians[best]:.2f}x | " +
                     "; ".join(f"{k} {spread(v, fmt)}" for k, v in runs.items() if k != "ours") +
                     " |")
    builds = {k for runs in result["throughput"].values() for k in runs
              if k != "ours" and not k.startswith("torch")}
    if builds:
        lines += ["", f"{', '.join(sorted(builds))}: other builds of ddp-trainer, run in the same "
                  "rounds."]
    if result.get("time_to_accuracy"):
        lines += ["", "Time to 88% test accuracy on W2 (batch 128, Adam, PyTorch's initial weights "
                  "of each seed on both sides; process start to the end of that epoch):", ""]
        for side, runs in result["time_to_accuracy"].items():
            seconds = [r["seconds"] if r else None for r in runs]
            epochs = [r["epochs"] for r in runs if r]
            lines.append(f"- {side}: {spread(seconds, lambda v: f'{v:.2f} s')}, epochs {epochs}")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build")
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--tta-seeds", type=int, default=5)
    p.add_argument("--commit", default=None)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--baseline", action="append", default=[], type=lambda v: v.split("=", 1),
                   help="LABEL=PATH: another ddp_bench to run in the same rounds")
    p.add_argument("--render-log", nargs=5, metavar=("LOG", "LIKE_JSON", "COMMIT", "DATE", "NOTE"),
                   help="write --out/compare_gpu.{json,md} from a run's log, without running")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)

    def save(result):
        with open(os.path.join(args.out, "compare_gpu.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(args.out, "compare_gpu.md"), "w") as f:
            f.write(render(result))

    if args.render_log:
        save(from_log(*args.render_log))
        return
    fmnist = tw.FMNIST
    log_file = open(os.path.join(args.out, "compare_gpu.log"), "a")

    def log(line):
        if line is None:
            return save(result)
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    result = {**provenance.record(), "gpu": gpu, "torch": f"torch {torch.__version__}",
              "reps": args.reps, "steps": args.steps, "warmup": args.warmup}
    if args.commit:
        result["commit"] = args.commit
    result["throughput"] = {}
    throughput_rows(args, fmnist, log, result["throughput"])
    if args.tta_seeds:
        result["time_to_accuracy"] = time_to_accuracy(args, fmnist, log)
    save(result)
    log(render(result))


if __name__ == "__main__":
    main()
