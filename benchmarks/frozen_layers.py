#!/usr/bin/python3
"""What freezing layers saves (Note [frozen layers]): W2 (Fashion-MNIST, 784 -> 512 -> 256 -> 10,
Adam, batch 128) on one core with nothing frozen, its first dense layer frozen, and both hidden
layers frozen (the head alone trained), ddp-trainer (`trainable: false`) against PyTorch's layers
with requires_grad_(False) and an optimizer of the rest, in the fastest variants of W2's
comparison (compare_pytorch.py: fused and foreach Adam, torch.compile, denormals flushed on both
sides), each process pinned to core 0. Medians of --reps alternated rounds with min-max; the
competitor of each row is PyTorch's fastest variant of that row.
  benchmarks/frozen_layers.py [--reps 5] [--out benchmarks/results]"""

import argparse
import json
import os
import statistics
import sys

import provenance
from bench_processes import BUILD, ROOT, VENV, alternate, python_with, run_json

FROZEN = {"nothing frozen": 0, "first layer frozen": 1, "hidden layers frozen": 2}
TORCH_VARIANTS = {"pypi fused": (os.path.join(VENV, "bin", "python"), ["--opt", "fused"]),
                  "pypi compile+fused": (os.path.join(VENV, "bin", "python"),
                                         ["--opt", "fused", "--compile"]),
                  "debian foreach": ("/usr/bin/python3", ["--opt", "foreach"])}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = p.parse_args()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    torches = {k: v for k, v in TORCH_VARIANTS.items() if python_with(v[0], "torch")}
    if not torches:
        sys.exit("no PyTorch found: apt-get install python3-torch libopenblas0-openmp, "
                 "and/or benchmarks/setup_frameworks.sh")
    runners = {}
    for row, frozen in FROZEN.items():
        sets = []
        for layer in range(1, frozen + 1):  # layers.0 is the flatten
            sets += ["--set", f"model.layers.{layer}.trainable=false"]
        runners[f"{row} / ours"] = lambda sets=sets: run_json(
            ["taskset", "-c", "0", os.path.join(BUILD, "ddp_bench"), "--config",
             os.path.join(ROOT, "configs", "w2_fmnist_mlp.yaml"), "--steps", str(args.steps),
             "--warmup", "30", *sets])
        for name, (python, flags) in torches.items():
            runners[f"{row} / {name}"] = lambda python=python, flags=flags, frozen=frozen: (
                run_json([python, os.path.join(ROOT, "benchmarks", "torch_workloads.py"),
                          "--workload", "w2", "--steps", str(args.steps), "--warmup", "30",
                          "--cpus", "0", "--ftz",
                          "--frozen", str(frozen), *flags]))
    result = {"provenance": provenance.record(), "reps": args.reps, "steps": args.steps,
              "runs": alternate(args.reps, runners, log)}
    result["provenance"]["load_average_end"] = os.getloadavg()
    os.makedirs(args.out, exist_ok=True)
    base = os.path.join(args.out, f"frozen_layers_{result['provenance']['commit']}")
    with open(base + ".json", "w") as f:
        json.dump(result, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(report(result))
    print(report(result))


def report(result):
    def stats(runs):
        v = [r["samples_per_sec"] for r in runs]
        return statistics.median(v), min(v), max(v)

    fmt = lambda s: f"{s[0]:,.0f} ({s[1]:,.0f}-{s[2]:,.0f})"
    pv = result["provenance"]
    lines = [f"# Frozen layers on W2, one core ({pv['date']}, commit {pv['commit']}, tree "
             f"{pv['tree']})", "",
             f"{pv['cpu']}, {pv['cpu_id']}, {pv['cores']} cores; load average at the start "
             f"{pv['load_average_start']}, at the end {pv['load_average_end']}. Medians of "
             f"{result['reps']} alternated rounds (min-max), {result['steps']} timed steps each, "
             "every process pinned to core 0. Command: `benchmarks/frozen_layers.py`.", "",
             "| W2, 1 x 1 | ours samples/s | vs ours with nothing frozen | PyTorch's fastest "
             "(samples/s) | vs PyTorch's same freezing | vs its nothing frozen |",
             "|---|---|---|---|---|---|"]
    runs = result["runs"]
    base_ours = stats(runs["nothing frozen / ours"])[0]
    base_torch = None
    for row in FROZEN:
        ours = stats(runs[f"{row} / ours"])
        theirs = {k.split(" / ")[1]: stats(v) for k, v in runs.items()
                  if k.startswith(row + " /") and not k.endswith("/ ours")}
        best = max(theirs, key=lambda k: theirs[k][0])
        base_torch = base_torch or theirs[best][0]
        lines.append(f"| {row} | {fmt(ours)} | {ours[0] / base_ours:.2f}x | {best}: "
                     f"{fmt(theirs[best])} | {ours[0] / theirs[best][0]:.2f}x | "
                     f"{theirs[best][0] / base_torch:.2f}x |")
    lines += ["", "Every variant:", "", "| variant | samples/s |", "|---|---|"]
    lines += [f"| {k} | {fmt(stats(v))} |" for k, v in runs.items()]
    lines += ["", "```", pv["lscpu"].strip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
