#!/usr/bin/env python3
"""A/B throughput of two ddp_bench builds (say, main before and after a change) on W2 and W3 (or
the --workloads given: W1 to W6) at 1 and 2 ranks (or the --ranks given; RxT: R ranks of T threads), alternating them run by run so that the
machine's drift hits both alike. Prints and writes a Markdown table of medians with their spread.
  git worktree add /tmp/base <commit> && cmake -S /tmp/base -B /tmp/build-base && \\
    cmake --build /tmp/build-base --target ddp_bench
  benchmarks/compare_builds.py --build "base=/tmp/build-base/ddp_bench" \\
    --build "head=build/ddp_bench" --reps 6 --out benchmarks/results/compare_builds.md
Two settings of one build: give it twice under two labels and --set LABEL=section.key=value.
Across hosts: --cluster "--hosts 2 --slots 1 --rate 1gbit" (repeatable) runs every workload on
that launch/netns_cluster.sh cluster (a fresh one per run, all its slots; needs root) instead of
1 and 2 ranks on this host."""

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import time

import provenance
from alternation import round_orders

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_pml="ob1")
WORKLOADS = {"W1": ("configs/w1_seed.yaml", ["--warmup", "1000", "--steps", "20000"]),
             "W2": ("configs/w2_fmnist_mlp.yaml", ["--warmup", "20", "--steps", "200"]),
             "W3": ("configs/w3_wide_mlp.yaml", ["--warmup", "5", "--steps", "40"]),
             "W4": ("configs/fashion_mnist_cnn.yaml", ["--warmup", "10", "--steps", "100"]),
             "W5": ("configs/w5_text_lstm.yaml", ["--warmup", "30", "--steps", "300"]),
             "W6": ("configs/w6_text_gru.yaml", ["--warmup", "30", "--steps", "300"])}


def binary_identity(binary):
    """What tells the compared binaries apart later: a content hash and when it was built."""
    with open(binary, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    built = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(os.path.getmtime(binary)))
    return f"sha256 {digest}, built {built}"


def run(binary, config, args, setting, overrides):
    """setting: ranks on this host ("2", or "1x2" for 1 rank of 2 threads, each bound to its
    cores), or a netns_cluster.sh option string."""
    cluster = setting.startswith("--")
    ranks, _, threads = ("", "", "") if cluster else setting.partition("x")
    if threads:
        overrides = [*overrides, f"training.threads_per_rank={threads}"]
    cmd = [binary, "--config", config, *args, *(a for o in overrides for a in ("--set", o))]
    if cluster:
        opts = setting.split()
        ranks = int(opts[opts.index("--hosts") + 1]) * int(opts[opts.index("--slots") + 1])
        script = f"mpirun $DDP_MPIRUN_ARGS -n {ranks} " + " ".join(shlex.quote(c) for c in cmd)
        cmd = [os.path.join(ROOT, "launch", "netns_cluster.sh"), *opts, "--", "sh", "-c", script]
    elif ranks != "1" or threads:
        cmd = ["mpirun", "-n", ranks, *(["--map-by", f"slot:PE={threads}"] if threads else []),
               "--bind-to", "core", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, check=True).stdout
    return json.loads(out[out.index("{"):])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", action="append", required=True, help="LABEL=path/to/ddp_bench")
    p.add_argument("--set", action="append", default=[], metavar="LABEL=KEY=VALUE",
                   help="a config override for one label's runs")
    p.add_argument("--cluster", action="append", default=[],
                   help="netns_cluster.sh options, e.g. \"--hosts 2 --slots 1 --rate 1gbit\"")
    p.add_argument("--workloads", default="W2,W3", help="comma-separated: W1 to W6")
    p.add_argument("--ranks", default="1,2",
                   help="comma-separated rank counts on this host (without --cluster), RxT for "
                        "R ranks of T threads each")
    p.add_argument("--reps", type=int, default=6)
    p.add_argument("--steps", action="append", default=[], metavar="WORKLOAD=N",
                   help="N timed steps (a tenth as many warm-up, at least 2) for a workload whose "
                        "default runs too long on a slow cluster")
    p.add_argument("--out", help="Markdown results file")
    a = p.parse_args()
    builds = dict(b.split("=", 1) for b in a.build)
    overrides = {label: [] for label in builds}
    for s in a.set:
        label, override = s.split("=", 1)
        if label not in overrides:
            p.error(f"--set {s}: no --build labelled {label}")
        overrides[label].append(override)
    workloads = {}
    for name in a.workloads.split(","):
        if name not in WORKLOADS:
            p.error(f"--workloads {a.workloads}: {name} is not one of {', '.join(WORKLOADS)}")
        workloads[name] = WORKLOADS[name]
    for s in a.steps:
        name, _, count = s.partition("=")
        if name not in workloads or not count.isdigit() or int(count) < 1:
            p.error(f"--steps {s}: expected WORKLOAD=N for one of {', '.join(workloads)}")
        steps = int(count)
        workloads[name] = (workloads[name][0],
                           ["--warmup", str(max(2, steps // 10)), "--steps", str(steps)])
    settings = a.cluster or a.ranks.split(",")
    for setting in [] if a.cluster else settings:
        ranks, x, threads = setting.partition("x")
        if not ranks.isdigit() or int(ranks) < 1 or (x and (not threads.isdigit() or
                                                           int(threads) < 1)):
            p.error(f"--ranks {a.ranks}: {setting} is neither N nor RxT")
    samples, rss, paths = {}, {}, {}
    labels = list(builds)
    for order in round_orders(len(labels), a.reps):  # no build always after the same one
        for name, (config, args) in workloads.items():
            for setting in settings:
                for label, binary in ((labels[i], builds[labels[i]]) for i in order):
                    result = run(binary, config, args, setting, overrides[label])
                    samples.setdefault((name, setting, label), []).append(
                        result["samples_per_sec"])
                    rss.setdefault((name, setting, label), []).append(max(result["peak_rss_mb"]))
                    paths[(name, setting, label)] = result.get("gradient_sync", "")
    commit = provenance.commit()
    flags = ([f"--build {b}" for b in a.build] + [f"--set {s}" for s in a.set] +
             [f'--cluster "{c}"' for c in a.cluster] + [f"--workloads {a.workloads}"] +
             ([f"--ranks {a.ranks}"] if not a.cluster and a.ranks != "1,2" else []) +
             [f"--steps {s}" for s in a.steps])
    lines = [f"Command: `benchmarks/compare_builds.py {' '.join(flags)} --reps {a.reps}`", "",
             f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} from a checkout at commit {commit} "
             f"on {provenance.cpu_model()}, "
             f"{os.cpu_count()} cores; builds alternated run by run; samples/s, median of "
             f"{a.reps} (min-max). The builds (which the checkout need not have made):", "",
             *[f"- {label}: `{binary}`, {binary_identity(binary)}"
               for label, binary in builds.items()], ""]

    def table(values, digits):
        lines.extend(["| workload | " + ("cluster" if a.cluster else "ranks") + " | " +
                      " | ".join(builds) + " | ratio |",
                      "|---|---|" + "---|" * len(builds) + "---|"])
        for name in workloads:
            for setting in settings:
                runs = [values[(name, setting, b)] for b in builds]
                medians = [statistics.median(r) for r in runs]
                cells = [f"{m:,.{digits}f} ({min(r):,.{digits}f}-{max(r):,.{digits}f})"
                         for m, r in zip(medians, runs)]
                lines.append(f"| {name} | {setting} | " + " | ".join(cells) +
                             f" | {medians[-1] / medians[0]:.3f} |")

    table(samples, 0)
    lines += ["", "Peak resident memory, MB (the largest rank's), median (min-max):", ""]
    table(rss, 1)
    gradient_paths = sorted({p for p in paths.values() if p})
    if gradient_paths:
        lines += ["", "Gradient paths reported by the builds that report them:"]
        lines += [f"- {p}" for p in gradient_paths]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
