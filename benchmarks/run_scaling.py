#!/usr/bin/env python3
"""Steady-state throughput of W1-W3 at 1, 2 and 4 ranks (only as many ranks as cores: timing
oversubscribed ranks means nothing), weak scaling (per-rank batch fixed) and strong scaling
(global batch fixed at twice the per-rank batch): every point the median of --reps runs (the
points alternating within each round) with min-max, ddp_bench's phase breakdown and peak RSS
per rank of the median run, and the provenance of the measurement. Writes
benchmarks/results/scaling.{json,md,png}.
  benchmarks/run_scaling.py [--reps 5]"""

import argparse
import json
import os
import statistics
import sys

import provenance
from bench_processes import ddp_bench

ROOT = provenance.ROOT
WORKLOADS = {  # name: (config, per-rank batch, steps, warm-up)
    "W1 seed": ("configs/w1_seed.yaml", 32, 20000, 1000),
    "W2 fmnist-mlp": ("configs/w2_fmnist_mlp.yaml", 128, 500, 1000),
    "W3 wide-mlp": ("configs/w3_wide_mlp.yaml", 64, 30, 5),
}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    ranks_list = [r for r in (1, 2, 4) if r <= os.cpu_count()]
    points = [(name, mode, ranks) for name in WORKLOADS for mode in ("weak", "strong")
              for ranks in ranks_list]
    runs = {point: [] for point in points}
    for rep in range(args.reps):
        for name, mode, ranks in points:
            config, batch, steps, warmup = WORKLOADS[name]
            overrides = [] if mode == "weak" else [
                "training.batch_size_per_rank=~", f"training.global_batch_size={2 * batch}"]
            runs[(name, mode, ranks)].append(ddp_bench(config, ranks, steps, warmup, overrides))
        print(f"round {rep + 1}/{args.reps} done", flush=True)
    results = []
    for (name, mode, ranks), point_runs in runs.items():
        rates = [x["samples_per_sec"] for x in point_runs]
        r = sorted(point_runs, key=lambda x: x["samples_per_sec"])[len(point_runs) // 2]
        r.update(name=name, mode=mode, samples_per_sec=statistics.median(rates),
                 min_samples_per_sec=min(rates), max_samples_per_sec=max(rates))
        results.append(r)
    for r in results:
        base = next(b for b in results if b["name"] == r["name"] and b["mode"] == r["mode"]
                    and b["world_size"] == 1)
        r["efficiency"] = r["samples_per_sec"] / (base["samples_per_sec"] * r["world_size"])
    out = os.path.join(ROOT, "benchmarks", "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "scaling.json"), "w") as f:
        json.dump(results, f, indent=2)
    prov = provenance.record()
    lines = [f"Command: `benchmarks/run_scaling.py --reps {args.reps}`. Measured {prov['date']} at "
             f"commit {prov['commit']} on {prov['cpu']} ({prov['cpu_id']}), {os.cpu_count()} "
             "cores (ranks beyond the core count are not timed). samples/s: median (min-max) of "
             "the runs, points alternating within each round; efficiency = median samples/s / "
             "(ranks x median at 1 rank); phases in ms per step of the median run, averaged over "
             "ranks.", "",
             "| workload | scaling | ranks | global batch | samples/s | efficiency | forward "
             "| backward | comm | optimizer | data | peak RSS/rank (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        p = r["phase_ms"]
        lines.append(f"| {r['name']} | {r['mode']} | {r['world_size']} | {r['global_batch']} | "
                     f"{r['samples_per_sec']:,.0f} ({r['min_samples_per_sec']:,.0f}-"
                     f"{r['max_samples_per_sec']:,.0f}) | {r['efficiency']:.2f} | "
                     f"{p['forward']:.3f} | {p['backward']:.3f} | {p['comm']:.3f} | "
                     f"{p['optimizer']:.3f} | {p['data']:.3f} | "
                     f"{max(r['peak_rss_mb']):.0f} |")
    with open(os.path.join(out, "scaling.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing (apt-get install python3-matplotlib): no plot", file=sys.stderr)
        return 0
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in WORKLOADS:
        for mode, style in (("weak", "-o"), ("strong", "--s")):
            rows = [r for r in results if r["name"] == name and r["mode"] == mode]
            xs = [r["world_size"] for r in rows]
            ax1.plot(xs, [r["samples_per_sec"] for r in rows], style, label=f"{name} ({mode})")
            ax2.plot(xs, [r["efficiency"] for r in rows], style, label=f"{name} ({mode})")
    ax1.set(xlabel="ranks (1 thread each)", ylabel="samples/s", yscale="log", xticks=ranks_list,
            title="Throughput")
    ax2.set(xlabel="ranks (1 thread each)", ylabel="scaling efficiency", ylim=(0, 1.1),
            xticks=ranks_list, title="Scaling efficiency")
    ax2.axhline(1.0, color="gray", lw=0.5)
    ax1.legend(fontsize=7)
    fig.suptitle(f"ddp-trainer on {results[0]['host']}, CPU, MPI (benchmarks/run_scaling.py)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "scaling.png"), dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
