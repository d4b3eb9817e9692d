#!/usr/bin/env python3
"""W3 (the wide MLP, 58.8 MB of gradients) on 2 hosts x 2 ranks of launch/netns_cluster.sh,
every host's link shaped by a token bucket (tbf) to each rate in turn, plus the unshaped bridge:
flat MPI across all 4 ranks, hierarchical (shared memory within a host, each local rank
all-reducing its half across hosts) and hierarchical with bf16 on the wire. Each run is a fresh
cluster running ddp_bench; variants alternate within each repeat; rows give the median samples/s
with min-max and the median run's step phases (exposed communication: time the step waits for
gradients). A run that took another path than the one asked for fails the benchmark.
Needs root (network namespaces). Writes benchmarks/results/multihost.{md,json}.
  benchmarks/run_multihost.py [--reps 5] [--rates 1gbit,10gbit,unshaped] [--steps 8]
The 4 ranks share this machine's cores (2 here): compute is that of an oversubscribed host, and
what the comparison shows is the traffic each variant puts on the host links."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import provenance
from alternation import round_orders

ROOT = provenance.ROOT
VARIANTS = [
    ("flat MPI (fp32)", ["training.allreduce=mpi"], "fp32 through mpi"),
    ("hierarchical (fp32)", ["training.allreduce=hierarchical"],
     "fp32 through shared memory within hosts, mpi across"),
    ("hierarchical + bf16 wire", ["training.allreduce=hierarchical", "training.wire_dtype=bf16"],
     "bf16 through shared memory within hosts, mpi across"),
]


def bench(rate, overrides, steps):
    shaping = [] if rate == "unshaped" else ["--rate", rate]
    sets = " ".join(f"--set {o}" for o in overrides)
    script = (f'mpirun $DDP_MPIRUN_ARGS -n 4 {ROOT}/build/ddp_bench --config '
              f'{ROOT}/configs/w3_wide_mlp.yaml --warmup 2 --steps {steps} {sets}')
    cmd = [f"{ROOT}/launch/netns_cluster.sh", "--hosts", "2", "--slots", "2", *shaping, "--",
           "sh", "-c", script]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if run.returncode != 0:
        sys.exit(f"run_multihost: {rate} {overrides}: exit {run.returncode}\n{run.stderr[-2000:]}")
    return json.loads(run.stdout[run.stdout.index("{"):])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--rates", default="1gbit,10gbit,unshaped")
    p.add_argument("--steps", type=int, default=8)
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("run_multihost: needs root (network namespaces)")
    rates = a.rates.split(",")
    record = provenance.record()
    runs = {(rate, name): [] for rate in rates for name, _, _ in VARIANTS}
    for rep, order in enumerate(round_orders(len(VARIANTS), a.reps)):
        for rate in rates:
            for name, overrides, path in (VARIANTS[i] for i in order):
                r = bench(rate, overrides, a.steps)
                if path not in r["gradient_sync"]:
                    sys.exit(f"run_multihost: {name} on {rate} took another path: "
                             f"{r['gradient_sync']}")
                runs[(rate, name)].append(r)
                print(f"rep {rep + 1} {rate} {name}: {r['samples_per_sec']:.0f} samples/s, "
                      f"comm {r['phase_ms']['comm']:.0f} ms", flush=True)

    lines = [f"Command: `benchmarks/run_multihost.py --reps {a.reps} --rates {a.rates} --steps "
             f"{a.steps}`: W3 (1024 -> 4 x 2048 -> 10, 14.7M parameters, 58.8 MB of gradients, "
             "64 samples per rank) on 2 hosts x 2 ranks of `launch/netns_cluster.sh`, every "
             "host's link shaped by tbf to the rate shown (`unshaped`: the veth bridge as is). "
             f"Measured {record['date']} at commit {record['commit']} ({record['tree']} tree) on "
             f"{record['cpu']} ({record['cpu_id']}), {record['cores']} cores: the 4 ranks share "
             "them, so compute is that of an oversubscribed host. Each row: median samples/s of "
             f"{a.reps} runs (variants alternated within each repeat; each run a fresh cluster, 2 "
             f"warm-up and {a.steps} timed steps) with min-max, and the median run's ms per step "
             "averaged over ranks.", "",
             "| link | gradient reduction | samples/s (min-max) | vs flat MPI "
             "| compute (fwd + bwd) | exposed communication | optimizer |",
             "|---|---|---|---|---|---|---|"]
    rows = []
    for rate in rates:
        flat = statistics.median(r["samples_per_sec"] for r in runs[(rate, VARIANTS[0][0])])
        for name, _, _ in VARIANTS:
            by_speed = sorted(runs[(rate, name)], key=lambda r: r["samples_per_sec"])
            median = by_speed[len(by_speed) // 2]
            speed = statistics.median(r["samples_per_sec"] for r in by_speed)
            ph = median["phase_ms"]
            rows.append({"rate": rate, "variant": name, "median_samples_per_sec": speed,
                         "vs_flat": speed / flat, "median_run": median,
                         "runs": runs[(rate, name)]})
            lines.append(f"| {rate} | {name} | {speed:,.0f} ({by_speed[0]['samples_per_sec']:,.0f}"
                         f"-{by_speed[-1]['samples_per_sec']:,.0f}) | {speed / flat:.2f}x | "
                         f"{ph['forward'] + ph['backward']:.0f} | {ph['comm']:.0f} | "
                         f"{ph['optimizer']:.0f} |")
    out = os.path.join(ROOT, "benchmarks", "results")
    with open(os.path.join(out, "multihost.json"), "w") as f:
        json.dump({"provenance": record, "rows": rows}, f, indent=2)
    with open(os.path.join(out, "multihost.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"took {time.monotonic() - start:.0f} s")
    sys.exit(code)
