#!/usr/bin/env python3
"""The trainer's ring all-reduce (training.mpi_allreduce: ring, Note [ring all-reduce]) against Open
MPI's MPI_Allreduce in pieces (library) on the namespace harness (launch/netns_cluster.sh):
  1. one 4 MB bucket's all-reduce (bench_allreduce --one-bucket; W3's bucket size) on 2 hosts x
     1 rank and 4 x 1 per link;
  2. training throughput (ddp_bench) of W2 and W3 on the links and layouts of #17's validation.
Each repeat starts a fresh cluster per case and runs both variants in it, in alternating order.
Needs root. Writes benchmarks/results/ring_allreduce.{md,json}.
With --overlap or --zero: training alone, in the variants of MODES (the non-blocking ring against
MPI_Iallreduce pieces; ZeRO-1's collectives as the ring's halves against MPI's), optionally beside
an older build (--baseline-build); writes ring_allreduce_{overlap,zero}.{md,json}.
  benchmarks/run_ring_allreduce.py [--reps 5] [--skip-training] [--overlap | --zero]
                                   [--baseline-build DIR]"""

import argparse
import json
import os
import statistics
import subprocess
import sys

import provenance
from alternation import round_orders

ROOT = provenance.ROOT
BUILD = os.path.join(ROOT, "build")
OUT = os.path.join(ROOT, "benchmarks", "results")
LINKS = {"100mbit": ["--rate", "100mbit"], "1gbit": ["--rate", "1gbit"], "unshaped": [],
         "100mbit+2ms": ["--rate", "100mbit", "--delay", "2ms"],
         "1gbit+2ms": ["--rate", "1gbit", "--delay", "2ms"]}
VARIANTS = ("ring", "library")
SWEEPS = [(hosts, link, size) for hosts in (2, 4) for link in LINKS
          for size in (4 << 20,)]
# (workload config, hosts, ranks per host, link, timed steps)
TRAINING = [("w2_fmnist_mlp", 4, 1, "100mbit", 8), ("w2_fmnist_mlp", 2, 1, "100mbit", 8),
            ("w2_fmnist_mlp", 4, 1, "1gbit+2ms", 30), ("w2_fmnist_mlp", 2, 1, "1gbit+2ms", 30),
            ("w2_fmnist_mlp", 2, 2, "1gbit", 60), ("w3_wide_mlp", 4, 1, "1gbit", 4),
            ("w3_wide_mlp", 2, 2, "1gbit", 4), ("w3_wide_mlp", 2, 1, "unshaped", 12),
            ("w3_wide_mlp", 4, 1, "unshaped", 8), ("w3_wide_mlp", 2, 2, "1gbit+2ms", 4)]
# Variant name: its training settings, and what its gradient_sync line must say.
SETTINGS = {"ring": ("training.mpi_allreduce=ring", ["around a ring"]),
            "library": ("training.mpi_allreduce=library", ["by MPI_Allreduce"])}
# --overlap and --zero: training alone, rows of (config, hosts, ranks per host, link, timed steps,
# bucket_mb), each running its variants in the order of a Williams design
# (benchmarks/alternation.py); `ratio` is the column the table ends with.
MODES = {
    "overlap": {
        "rows": [("w3_wide_mlp", 2, 1, "1gbit+2ms", 6, 25), ("w3_wide_mlp", 2, 1, "1gbit+2ms", 6, 1),
                 ("w3_wide_mlp", 2, 1, "1gbit", 6, 4), ("w3_wide_mlp", 2, 1, "unshaped", 12, 4),
                 ("w2_fmnist_mlp", 2, 1, "1gbit+2ms", 30, 4),
                 ("w2_fmnist_mlp", 4, 1, "100mbit", 8, 4)],
        "variants": {
            "ring": ("training.mpi_allreduce=ring training.overlap=true",
                     ["overlapped", "around a ring"]),
            "library": ("training.mpi_allreduce=library training.overlap=true",
                        ["overlapped", "by MPI_Allreduce"]),
            "ring_after_backward": ("training.mpi_allreduce=ring training.overlap=false",
                                    ["after backward", "around a ring"])},
        "ratio": ("ring", "library"),
        "about": "with `training.overlap: true`: `ring` is the non-blocking ring (each bucket's ring "
                 "started when backward made it final, moved on by the polls between layers; Note "
                 "[overlapped pieces]), `library` Open MPI's MPI_Iallreduce in pieces, one at a "
                 "time; `ring_after_backward` the blocking ring with overlap off."},
    "zero": {
        "rows": [("w3_wide_mlp", 2, 1, "1gbit", 6, 4), ("w3_wide_mlp", 2, 1, "1gbit+2ms", 6, 4),
                 ("w3_wide_mlp", 2, 1, "unshaped", 12, 4), ("w3_wide_mlp", 4, 1, "1gbit", 4, 4),
                 ("w2_fmnist_mlp", 2, 1, "1gbit+2ms", 30, 4)],
        "variants": {
            "zero1_ring": ("training.mpi_allreduce=ring training.zero=1",
                           ["ZeRO-1", "around a ring"]),
            "zero1_library": ("training.mpi_allreduce=library training.zero=1",
                              ["ZeRO-1", "by MPI_Allreduce"]),
            "replicated_ring": ("training.mpi_allreduce=ring training.zero=0",
                                ["replicated", "around a ring"])},
        "ratio": ("zero1_ring", "zero1_library"),
        "about": "with `training.zero`: `zero1_ring` is ZeRO-1 with its reduce-scatter and "
                 "all-gather as the ring's two halves over the whole buffer (Note [ZeRO-1]), "
                 "`zero1_library` the same calls through MPI_Reduce_scatter / MPI_Allgatherv in "
                 "rounds of 512 KB per rank, `replicated_ring` the replicated step with the "
                 "ring's all-reduce."}}


def cluster(hosts, per_host, link, script):
    cmd = [os.path.join(ROOT, "launch", "netns_cluster.sh"), "--hosts", str(hosts), "--slots",
           str(per_host)] + LINKS[link] + ["--", "sh", "-c", script]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        sys.exit(f"run_ring_allreduce: {hosts}x{per_host} {link}: exit {run.returncode}\n"
                 f"{run.stderr[-2000:]}")
    return run.stdout


def sweep(hosts, link, size, order):
    """ms per all-reduce of `size` bytes for each variant, and raw MPI_Allreduce of the whole."""
    script = " ; ".join(
        f"echo VARIANT {v}; mpirun $DDP_MPIRUN_ARGS -n {hosts} {BUILD}/bench_allreduce "
        f"--allreduce mpi --one-bucket --min-bytes {size} --max-bytes {size} "
        f"--seconds-per-size 1 --mpi-allreduce {v}" + (" --no-raw" if i else "")
        for i, v in enumerate(order))
    out, variant, result = cluster(hosts, 1, link, script), None, {}
    for line in out.splitlines():
        if line.startswith("VARIANT"):
            variant = line.split()[1]
        elif line.strip().startswith(str(size)):
            fields = line.split()
            result[variant] = float(fields[4])
            if fields[1] != "0.000":
                result["raw"] = float(fields[1])
    return result


def train(config, hosts, per_host, link, steps, order, settings=SETTINGS, extra="", builds=None):
    script = " ; ".join(
        f"mpirun $DDP_MPIRUN_ARGS -n {hosts * per_host} {(builds or {}).get(v, BUILD)}/ddp_bench "
        f"--config {ROOT}/configs/{config}.yaml --warmup 2 --steps {steps} --label {v} {extra}"
        + "".join(f" --set {x}" for x in settings[v][0].split()) for v in order)
    out, results = cluster(hosts, per_host, link, script), {}
    decoder, at = json.JSONDecoder(), 0
    while (start := out.find("{", at)) >= 0:
        r, at = decoder.raw_decode(out, start)
        results[r["workload"]] = r
    return results


def cell(values, digits=0):
    return (f"{statistics.median(values):,.{digits}f} "
            f"({min(values):,.{digits}f}-{max(values):,.{digits}f})")


def variant_table(mode, reps, baseline):
    """Training alone, in MODES[mode]'s variants (plus `before`: the baseline build's ddp_bench with
    the first variant's settings and checks, when given)."""
    record = provenance.record()
    spec = MODES[mode]
    settings, builds = dict(spec["variants"]), {}
    if baseline:
        settings["before"] = settings[spec["ratio"][0]]
        settings["before"] = (settings["before"][0].replace("training.mpi_allreduce=ring", ""),
                              settings["before"][1][:1])
        builds["before"] = baseline
    variants = list(settings)
    runs = {t: {v: [] for v in variants} for t in spec["rows"]}
    for rep, indices in enumerate(round_orders(len(variants), reps)):
        order = [variants[i] for i in indices]
        for t in runs:
            config, hosts, per_host, link, steps, bucket = t
            for v, r in train(config, hosts, per_host, link, steps, order, settings,
                              f"--set training.bucket_mb={bucket}", builds).items():
                if not all(text in r["gradient_sync"] for text in settings[v][1]):
                    sys.exit(f"run_ring_allreduce: {t} {v}: {r['gradient_sync']}")
                runs[t][v].append(r)
            print(f"rep {rep + 1} {t}: " + ", ".join(
                f"{v} {runs[t][v][-1]['samples_per_sec']:.0f}" for v in variants), flush=True)
    top, bottom = spec["ratio"]
    lines = [
        f"Command: `benchmarks/run_ring_allreduce.py --{mode} --reps {reps}"
        + (" --baseline-build DIR" if baseline else "") + "`. Measured "
        f"{record['date']} at commit {record['commit']} ({record['tree']} tree) on "
        f"{record['cpu']} ({record['cpu_id']}), {record['cores']} cores shared by every harness "
        "host. Training throughput (ddp_bench, samples/s) " + spec["about"]
        + (f" `before`: {baseline_commit(baseline)}'s ddp_bench with the first variant's "
           "settings." if baseline else "")
        + f" Medians of {reps} repeats (min-max); each repeat a fresh cluster per row running "
        "the variants in the order of a Williams design (each after a different one each "
        "repeat).", "",
        "| workload | layout | link | bucket_mb | " + " | ".join(variants)
        + f" | {top} / {bottom} |", "|---|---|---|---|" + "---|" * (len(variants) + 1)]
    for (config, hosts, per_host, link, _, bucket), by in runs.items():
        sps = {v: [r["samples_per_sec"] for r in by[v]] for v in variants}
        lines.append(
            f"| {config.split('_')[0].upper()} | {hosts}x{per_host} | {link} | {bucket} | "
            + " | ".join(cell(sps[v]) for v in variants)
            + f" | {statistics.median(sps[top]) / statistics.median(sps[bottom]):.2f} |")
    with open(os.path.join(OUT, f"ring_allreduce_{mode}.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, f"ring_allreduce_{mode}.json"), "w") as f:
        json.dump({"provenance": record, "baseline": baseline_commit(baseline) if baseline else None,
                   "training": [{"config": t[0], "hosts": t[1], "ranks_per_host": t[2],
                                 "link": t[3], "bucket_mb": t[5], **v} for t, v in runs.items()]},
                  f, indent=1)
    print("\n".join(lines))


def baseline_commit(build):
    """The commit a build directory was configured from (its CMakeCache's source directory)."""
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        source = next(line.split("=", 1)[1].strip() for line in f
                      if line.startswith("CMAKE_HOME_DIRECTORY"))
    return "commit " + subprocess.run(["git", "-C", source, "rev-parse", "--short", "HEAD"],
                                      capture_output=True, text=True, check=True).stdout.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--overlap", action="store_true", help="training with overlap (MODES)")
    p.add_argument("--zero", action="store_true", help="training with ZeRO-1 (MODES)")
    p.add_argument("--baseline-build", help="with --overlap/--zero: also this build's ddp_bench")
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("run_ring_allreduce: needs root (network namespaces)")
    if a.overlap or a.zero:
        return variant_table("overlap" if a.overlap else "zero", a.reps, a.baseline_build)
    record = provenance.record()
    sweeps = {s: {"ring": [], "library": [], "raw": []} for s in SWEEPS}
    runs = {t: {"ring": [], "library": []} for t in ([] if a.skip_training else TRAINING)}
    for rep in range(a.reps):
        order = VARIANTS if rep % 2 == 0 else VARIANTS[::-1]
        for s in SWEEPS:
            for k, v in sweep(*s, order).items():
                sweeps[s][k].append(v)
            print(f"rep {rep + 1} sweep {s}: " + ", ".join(
                f"{k} {v[-1]:.1f}" for k, v in sweeps[s].items() if v), flush=True)
        for t in runs:
            for v, r in train(*t, order).items():
                runs[t][v].append(r)
            print(f"rep {rep + 1} {t}: " + ", ".join(
                f"{v} {runs[t][v][-1]['samples_per_sec']:.0f}" for v in VARIANTS), flush=True)
    for t, by in runs.items():
        for v, rs in by.items():
            for r in rs:
                if not all(text in r["gradient_sync"] for text in SETTINGS[v][1]):
                    sys.exit(f"run_ring_allreduce: {t} {v}: {r['gradient_sync']}")
    lines = [
        f"Command: `benchmarks/run_ring_allreduce.py --reps {a.reps}`. Measured "
        f"{record['date']} at commit {record['commit']} ({record['tree']} tree) on "
        f"{record['cpu']} ({record['cpu_id']}), {record['cores']} cores shared by every harness "
        "host (`launch/netns_cluster.sh`; tbf rate limits with 10 ms queues, delay by "
        "`ddp_link_relay`). `ring`: training.mpi_allreduce: ring (Note [ring all-reduce]); "
        "`library`: Open MPI's MPI_Allreduce in pieces of 512 KB per rank (Note [all-reduce "
        f"pieces]); `raw`: one MPI_Allreduce of the whole buffer. Medians of {a.reps} repeats "
        "(min-max); each repeat a fresh cluster per row, both variants in it, alternating which "
        "runs first.", "", "## One bucket (bench_allreduce --one-bucket), ms per all-reduce", "",
        "| hosts x 1 | link | bytes | ring | library | raw MPI_Allreduce | library / ring |",
        "|---|---|---|---|---|---|---|"]
    for (hosts, link, size), by in sweeps.items():
        ratio = statistics.median(by["library"]) / statistics.median(by["ring"])
        lines.append(f"| {hosts} | {link} | {size:,} | {cell(by['ring'], 1)} | "
                     f"{cell(by['library'], 1)} | {cell(by['raw'], 1)} | {ratio:.2f} |")
    if runs:
        lines += ["", "## Training (ddp_bench), samples/s and the median run's exposed "
                  "communication (ms per step)", "",
                  "| workload | layout | link | gradients | ring samples/s | library samples/s "
                  "| ring / library | comm ms ring / library |", "|---|---|---|---|---|---|---|---|"]
        for (config, hosts, per_host, link, _), by in runs.items():
            sps = {v: [r["samples_per_sec"] for r in by[v]] for v in VARIANTS}
            comm = {v: statistics.median([r["phase_ms"]["comm"] for r in by[v]]) for v in VARIANTS}
            path = by["ring"][0]["gradient_sync"].split(" through ")[1].split(" (")[0]
            lines.append(
                f"| {config.split('_')[0].upper()} | {hosts}x{per_host} | {link} | {path} | "
                f"{cell(sps['ring'])} | {cell(sps['library'])} | "
                f"{statistics.median(sps['ring']) / statistics.median(sps['library']):.2f} | "
                f"{comm['ring']:.1f} / {comm['library']:.1f} |")
    with open(os.path.join(OUT, "ring_allreduce.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(OUT, "ring_allreduce.json"), "w") as f:
        json.dump({"provenance": record,
                   "sweeps": [{"hosts": h, "link": l, "bytes": b, **v}
                              for (h, l, b), v in sweeps.items()],
                   "training": [{"config": t[0], "hosts": t[1], "ranks_per_host": t[2],
                                 "link": t[3], **v} for t, v in runs.items()]}, f, indent=1)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
