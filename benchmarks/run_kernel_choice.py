#!/usr/bin/env python3
"""The GEMM kernels W2 and W3 get by default (Note [tiled GEMM], Note [OpenBLAS kernels]) against
the alternatives this CPU can run: every OpenBLAS core type, with skinny products sent to OpenBLAS
too (DDP_GEMM=blas). One rank x one thread, settings alternated run by run; medians with min-max.
The default must be within 10% of the best. Writes benchmarks/results/kernel_choice.md, or --out.
  benchmarks/run_kernel_choice.py [--reps 5] [--out benchmarks/results/kernel_choice_zen3.md]"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import provenance
from alternation import round_orders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKLOADS = {"W2": ("configs/w2_fmnist_mlp.yaml", ["--warmup", "20", "--steps", "200"]),
             "W3": ("configs/w3_wide_mlp.yaml", ["--warmup", "3", "--steps", "25"])}


def flags():
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def settings():
    """Environment settings, the default (nothing set) first: the default kernels, then every
    OpenBLAS core type this CPU can execute with all large products through OpenBLAS."""
    f = flags()
    coretypes = ["Prescott"]
    if {"avx2", "fma"} <= f:
        coretypes.append("Haswell")
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= f:
        coretypes.append("SkylakeX")
    return [()] + [(("DDP_GEMM", "blas"), ("OPENBLAS_CORETYPE", c)) for c in coretypes]


def label(setting):
    return " ".join(f"{k}={v}" for k, v in setting) or "(nothing set: default)"


def run(config, args, setting):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "DDP_GEMM")}
    env.update(dict(setting))
    out = subprocess.run([os.path.join(ROOT, "build", "ddp_bench"), "--config", config, *args],
                         capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout
    return json.loads(out[out.index("{"):])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "kernel_choice.md"))
    a = p.parse_args()
    samples, backend = {}, {}
    choices = settings()
    for order in round_orders(len(choices), a.reps):  # no setting always after the same one
        for name, (config, args) in WORKLOADS.items():
            for setting in (choices[i] for i in order):
                r = run(config, args, setting)
                samples.setdefault((name, setting), []).append(r["samples_per_sec"])
                backend[(name, setting)] = r["backend"]
    commit = provenance.commit()
    command = " ".join(["benchmarks/run_kernel_choice.py", *sys.argv[1:]])
    lines = [f"Command: `{command}`. Measured "
             f"{time.strftime('%Y-%m-%d %H:%M')} at commit {commit} on {provenance.cpu_model()} "
             f"({provenance.cpu_family_model()}), "
             f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end; 1 rank x "
             "1 thread, settings alternated run by run; samples/s, median (min-max).", "",
             "| workload | environment | backend as logged | samples/s | vs best |",
             "|---|---|---|---|---|"]
    verdict = 0
    for name in WORKLOADS:
        medians = {s: statistics.median(samples[(name, s)]) for s in settings()}
        best = max(medians.values())
        for s in settings():
            v = samples[(name, s)]
            lines.append(f"| {name} | {label(s)} | {backend[(name, s)]} | "
                         f"{medians[s]:,.0f} ({min(v):,.0f}-{max(v):,.0f}) | "
                         f"{medians[s] / best:.2f} |")
        if medians[()] < 0.9 * best:
            verdict = 1
    text = "\n".join(lines) + "\n"
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    if verdict:
        print("FAIL: the default kernels are more than 10% slower than the best setting")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
