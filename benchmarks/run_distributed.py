#!/usr/bin/env python3
"""The wide MLP (W3) on 2 ranks: step time split into compute (forward + backward), exposed
communication and optimizer for each way of reducing gradients, on both all-reduce paths
(training.allreduce: shm and mpi), and per-rank peak memory with and without ZeRO-1 (Adam, whose
two moment buffers are what ZeRO-1 shards). Variants alternate within each repeat; the table
gives medians with the spread of samples/s, and the path each run reported taking.
Writes benchmarks/results/distributed.{md,json}.
  benchmarks/run_distributed.py [--reps 5] [--paths shm,mpi]"""

import argparse
import json
import os
import sys
import time

import provenance
from alternation import round_orders
from bench_processes import ddp_bench

ROOT = provenance.ROOT
VARIANTS = [
    ("replicated, synchronous, 4 MB buckets", ["training.zero=0"]),
    ("replicated, synchronous, 25 MB buckets", ["training.zero=0", "training.bucket_mb=25"]),
    ("replicated, overlapped with backward, 4 MB buckets", ["training.overlap=true"]),
    ("replicated, synchronous + bf16 wire", ["training.wire_dtype=bf16"]),
    ("replicated, overlapped + bf16 wire", ["training.overlap=true", "training.wire_dtype=bf16"]),
    # Note [sharded step]: the default (zero: auto) through shared memory; over MPI a
    # reduce-scatter, the step on the shard, then an all-gather.
    ("ZeRO-1 (default on shm: sums made inside the sharded step)", ["training.zero=1"]),
    ("ZeRO-1, sums made before the step (nonfinite: skip)",
     ["training.zero=1", "training.nonfinite=skip"]),
]
PATHS = ["shm", "mpi"]
ADAM = ["optimizer.type=adam", "optimizer.learning_rate=0.0001", "optimizer.momentum=~"]


def bench(overrides, steps=30):
    return ddp_bench("configs/w3_wide_mlp.yaml", 2, steps, 5, overrides)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--paths", default=",".join(PATHS), help="training.allreduce values to compare")
    a = p.parse_args()
    variants = [(f"{name} [{path}]", overrides + [f"training.allreduce={path}"])
                for path in a.paths.split(",") for name, overrides in VARIANTS]
    runs = {name: [] for name, _ in variants}
    for order in round_orders(len(variants), a.reps):  # no variant always after the same one
        for name, overrides in (variants[i] for i in order):
            runs[name].append(bench(overrides))
    rows = []
    for name, _ in variants:
        by_speed = sorted(runs[name], key=lambda x: x["samples_per_sec"])
        median = by_speed[len(by_speed) // 2]
        rows.append((name, median, by_speed[0]["samples_per_sec"], by_speed[-1]["samples_per_sec"]))
        print(f"{name}: {median['samples_per_sec']:.0f} samples/s", flush=True)
    memory = []
    for name, overrides in (("Adam, replicated state", ADAM + ["training.zero=0"]),
                            ("Adam, ZeRO-1", ADAM + ["training.zero=1"])):
        r = bench(overrides, steps=5)
        memory.append((name, r))
        print(f"{name}: {r['peak_rss_mb']} MB", flush=True)
    commit = provenance.commit()
    lines = [f"Command: `benchmarks/run_distributed.py --reps {a.reps} --paths {a.paths}`: "
             "W3 (1024 -> 4 x 2048 -> 10, "
             "14.7M parameters, 58.8 MB of gradients), 2 ranks x 64 samples. Measured "
             f"{time.strftime('%Y-%m-%d %H:%M')} at commit {commit} on {provenance.cpu_model()}, "
             f"{os.cpu_count()} cores. Each row: the run with the median samples/s of {a.reps} "
             "(variants alternated within each repeat), its ms per step averaged over ranks, and "
             "the slowest-fastest samples/s; [shm] and [mpi] are training.allreduce. Where the "
             "step sums the gradients itself (ZeRO-1's default through shared memory), the "
             "reduce-scatter is inside the optimizer column.", "",
             "| gradient reduction | samples/s (min-max) | compute (fwd + bwd) "
             "| exposed communication | optimizer | path taken |",
             "|---|---|---|---|---|---|"]
    for name, r, low, high in rows:
        p = r["phase_ms"]
        path = r.get("gradient_sync", "").split(" through ")[-1]
        lines.append(f"| {name} | {r['samples_per_sec']:,.0f} ({low:,.0f}-{high:,.0f}) | "
                     f"{p['forward'] + p['backward']:.1f} | {p['comm']:.1f} | "
                     f"{p['optimizer']:.1f} | {path} |")
    lines += ["", "| optimizer state | its size per rank (MB) | peak RSS per rank (MB) |",
              "|---|---|---|"]
    for name, r in memory:
        lines.append(f"| {name} | {r['optimizer_state_mb_per_rank']:.1f} | "
                     f"{', '.join(f'{m:.0f}' for m in r['peak_rss_mb'])} |")
    out = os.path.join(ROOT, "benchmarks", "results")
    with open(os.path.join(out, "distributed.json"), "w") as f:
        json.dump({"reduction": [dict(r, variant=n, runs=runs[n]) for n, r, _, _ in rows],
                   "memory": [dict(r, variant=n) for n, r in memory]}, f, indent=2)
    with open(os.path.join(out, "distributed.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
