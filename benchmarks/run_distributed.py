#!/usr/bin/env python3
"""The wide MLP (W3) on 2 ranks: step time split into compute (forward + backward), exposed
communication and optimizer for each way of reducing gradients, and per-rank peak memory with and
without ZeRO-1 (Adam, whose two moment buffers are what ZeRO-1 shards).
Writes benchmarks/results/distributed.{md,json}.
  benchmarks/run_distributed.py"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_pml="ob1")
VARIANTS = [
    ("synchronous, 4 MB buckets (default)", []),
    ("synchronous, 25 MB buckets", ["training.bucket_mb=25"]),
    ("overlapped with backward, 4 MB buckets", ["training.overlap=true"]),
    ("synchronous + bf16 wire", ["training.wire_dtype=bf16"]),
    ("overlapped + bf16 wire", ["training.overlap=true", "training.wire_dtype=bf16"]),
    ("ZeRO-1 (reduce-scatter + all-gather)", ["training.zero=1"]),
]
ADAM = ["optimizer.type=adam", "optimizer.learning_rate=0.0001", "optimizer.momentum=~"]


def bench(overrides, steps=30):
    cmd = ["mpirun", "-n", "2", os.path.join(ROOT, "build", "ddp_bench"), "--config",
           "configs/w3_wide_mlp.yaml", "--steps", str(steps), "--warmup", "5"]
    for o in overrides:
        cmd += ["--set", o]
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=True, cwd=ROOT).stdout
    return json.loads(out[out.index("{"):])


def main():
    rows, memory = [], []
    for name, overrides in VARIANTS:
        r = max((bench(overrides) for _ in range(2)), key=lambda x: x["samples_per_sec"])
        rows.append((name, r))
        print(f"{name}: {r['samples_per_sec']:.0f} samples/s", flush=True)
    for name, overrides in (("Adam, replicated state", ADAM),
                            ("Adam, ZeRO-1", ADAM + ["training.zero=1"])):
        r = bench(overrides, steps=5)
        memory.append((name, r))
        print(f"{name}: {r['peak_rss_mb']} MB", flush=True)
    lines = ["Command: `benchmarks/run_distributed.py`: W3 (1024 -> 4 x 2048 -> 10, 14.7M parameters, "
             f"58.8 MB of gradients), 2 ranks x 64 samples, on {rows[0][1]['host']}. "
             "ms per step, averaged over ranks; best of two runs.", "",
             "| gradient reduction | samples/s | compute (fwd + bwd) | exposed communication | optimizer |",
             "|---|---|---|---|---|"]
    for name, r in rows:
        p = r["phase_ms"]
        lines.append(f"| {name} | {r['samples_per_sec']:,.0f} | {p['forward'] + p['backward']:.1f} | "
                     f"{p['comm']:.1f} | {p['optimizer']:.1f} |")
    lines += ["", "| optimizer state | its size per rank (MB) | peak RSS per rank (MB) |",
              "|---|---|---|"]
    for name, r in memory:
        lines.append(f"| {name} | {r['optimizer_state_mb_per_rank']:.1f} | "
                     f"{', '.join(f'{m:.0f}' for m in r['peak_rss_mb'])} |")
    out = os.path.join(ROOT, "benchmarks", "results")
    with open(os.path.join(out, "distributed.json"), "w") as f:
        json.dump({"reduction": [dict(r, variant=n) for n, r in rows],
                   "memory": [dict(r, variant=n) for n, r in memory]}, f, indent=2)
    with open(os.path.join(out, "distributed.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
