#!/usr/bin/env python3
"""Test accuracy epoch by epoch, ddp-trainer against one PyTorch variant, from the same initial
weights for each seed: whether a time-to-accuracy gap in epochs (compare_pytorch.py's w4tta rows)
is a difference in how the two train or the luck of the seeds.

  benchmarks/tta_curves.py [--workload w4] [--seeds 6] [--first-seed 10] [--epochs 14] \
      [--python /usr/bin/python3] [--out results/curves.md]

Each seed: PyTorch's initialization exported as safetensors; ddp-trainer on 2 ranks of 64
(`--init-from`, the data order and dropout masks from `seed`), then PyTorch as 1 process x 2
threads (its eager foreach Adam, channels-last for W4, OpenBLAS with the kernels ddp-trainer
would choose, denormals flushed), both for the same number of epochs with test accuracy after
each; global batch 128, Adam 1e-3, the last partial batch trained on both sides. No early stop,
so every seed gives both curves in full. Accuracy, not time: the two sides run one after the
other."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

import provenance
from bench_processes import BASE_ENV, ROOT
from compare_pytorch import Torch
from time_to_accuracy import SAME_AS_PYTORCH, TTA, ours_command, time_to_accuracy_torch


def ours(workload, init, seed, epochs, run_dir):
    shutil.rmtree(run_dir, ignore_errors=True)
    subprocess.run(ours_command(workload, init, seed, run_dir, epochs=epochs) + SAME_AS_PYTORCH +
                   ["--progress", "off"], env=dict(BASE_ENV, OMP_NUM_THREADS="1"), cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line)["val_accuracy"] for line in f]


def pytorch_variant(python, workload):
    """compare_pytorch.py's variant of the time-to-accuracy rows: the fastest eager optimizer,
    channels-last for W4 (its flags and OpenBLAS kernels)."""
    torch = Torch("debian" if python == "/usr/bin/python3" else "pypi", python)
    variants = torch.variants(eager_defaults=False, compiled=False, channels_last=True)
    name = f"{torch.label} {torch.best_eager()}" + (" channels-last" if workload == "w4" else "")
    return torch, name, variants[name]


def first_at(curve, target):
    return next((str(i + 1) for i, a in enumerate(curve) if a >= target), "not reached")


def report(args, target, curves, started, variant):
    p = provenance.record()
    seeds = sorted(curves)
    lines = [f"Measured {p['date']} at commit {p['commit']} ({p['tree']} tree) on {p['cpu']} "
             f"({p['cpu_id']}), started {started}; load average {p['load_average_start'][0]:.2f}"
             " at the end.",
             f"Command: `benchmarks/tta_curves.py --workload {args.workload} --seeds {args.seeds}"
             f" --first-seed {args.first_seed} --epochs {args.epochs}`; PyTorch variant: "
             f"{variant}, 1 process x 2 threads.", "",
             f"Test accuracy after each epoch, {len(seeds)} seeds (the same initial weights on "
             "both sides per seed); mean and median over the seeds, and per epoch on how many "
             "seeds ddp-trainer was ahead.", "",
             "| epoch | ddp-trainer mean | PyTorch mean | ddp-trainer median | PyTorch median | "
             "ours ahead |", "|---|---|---|---|---|---|"]
    for e in range(args.epochs):
        o = [curves[s]["ours"][e] for s in seeds]
        t = [curves[s]["pytorch"][e] for s in seeds]
        ahead = sum(a > b for a, b in zip(o, t))
        lines.append(f"| {e + 1} | {statistics.mean(o):.4f} | {statistics.mean(t):.4f} | "
                     f"{statistics.median(o):.4f} | {statistics.median(t):.4f} | "
                     f"{ahead} of {len(seeds)} |")
    lines += ["", f"First epoch at {target:.0%} or more, per seed:", "",
              "| seed | ddp-trainer | PyTorch |", "|---|---|---|"]
    for s in seeds:
        lines.append(f"| {s} | {first_at(curves[s]['ours'], target)} | "
                     f"{first_at(curves[s]['pytorch'], target)} |")
    lines += ["", "Curves (test accuracy by epoch):", ""]
    for s in seeds:
        for side in ("ours", "pytorch"):
            lines.append(f"- seed {s} {side}: " +
                         ", ".join(f"{a:.4f}" for a in curves[s][side]))
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=sorted(TTA), default="w4")
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--first-seed", type=int, default=10)
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--python", default="/usr/bin/python3",
                   help="a Python with torch and safetensors")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    target = TTA[args.workload][1]
    started = time.strftime("%H:%M %Z")
    work = tempfile.mkdtemp(prefix="ddp_curves_")
    torch, variant, (flags, env) = pytorch_variant(args.python, args.workload)
    curves = {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        init = os.path.join(work, f"init{seed}.safetensors")
        subprocess.run([torch.python, torch.script(), "--export-init", init, "--seed", str(seed),
                        "--workload", args.workload], check=True, env=BASE_ENV,
                       capture_output=True)
        curves[seed] = {"ours": ours(args.workload, init, seed, args.epochs,
                                     os.path.join(work, "run")),
                        "pytorch": time_to_accuracy_torch(args.workload, torch, flags, env, init,
                                                          seed, args.epochs)["accuracies"]}
        print(f"seed {seed}: ours {curves[seed]['ours'][-1]:.4f}, "
              f"pytorch {curves[seed]['pytorch'][-1]:.4f}", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    with open(args.out, "w") as f:
        f.write(report(args, target, curves, started, variant))
    with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
        json.dump({"provenance": provenance.record(), "curves": curves}, f, indent=1)


if __name__ == "__main__":
    main()
