#!/usr/bin/env python3
"""ddp-trainer against PyTorch on this machine, in one run, alternating the two, and the ratios
of issue #5's targets. Writes benchmarks/results/compare_pytorch.{json,md}.
  benchmarks/compare_pytorch.py [--quick]
PyTorch is Debian's python3-torch (/usr/bin/python3) with the BLAS it maps (printed); one thread
per process; DDP with gloo for 2 ranks. ddp-trainer flushes denormals by default (FTZ/DAZ); both
sides are measured with and without for W2."""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
TORCH = ["/usr/bin/python3", os.path.join(ROOT, "benchmarks", "torch_workloads.py")]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_pml="ob1", OMP_NUM_THREADS="1")
CONFIGS = {"w1": "configs/w1_seed.yaml", "w2": "configs/w2_fmnist_mlp.yaml",
           "w3": "configs/w3_wide_mlp.yaml"}


def json_out(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=True, cwd=ROOT).stdout
    return json.loads(out[out.index("{"):])


def ours(workload, ranks, steps, warmup, ftz=True):
    cmd = ["mpirun", "-n", str(ranks), os.path.join(BUILD, "ddp_bench"), "--config",
           CONFIGS[workload], "--steps", str(steps), "--warmup", str(warmup)]
    if not ftz:
        cmd += ["--set", "training.flush_denormals=false"]
    return json_out(cmd)


def theirs(workload, ranks, steps, warmup, ftz=False):
    cmd = TORCH + ["--workload", workload, "--ranks", str(ranks), "--steps", str(steps),
                   "--warmup", str(warmup)] + (["--ftz"] if ftz else [])
    return json_out(cmd)


def best(runs):
    return max(runs, key=lambda r: r["samples_per_sec"])


def alternate(reps, a, b):
    """Runs a and b alternately `reps` times each; returns the best of each."""
    ra, rb = [], []
    for _ in range(reps):
        ra.append(a())
        rb.append(b())
    return best(ra), best(rb)


def timed_process(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0, f"{cmd} failed"
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def time_to_accuracy_ours(target):
    run_dir = "/tmp/ddp_compare_tta"
    start = time.perf_counter()
    subprocess.run([os.path.join(ROOT, "launch", "ddp_run.sh"), "-n", "2", "--config",
                    "configs/fashion_mnist_mlp.yaml", "--run-dir", run_dir,
                    "--set", "checkpoint.every_epochs=0"], check=True, env=ENV, cwd=ROOT,
                   capture_output=True)
    wall = time.perf_counter() - start
    with open(f"{run_dir}/metrics.jsonl") as f:
        records = [json.loads(l) for l in f]
    hit = next((i for i, r in enumerate(records) if r["val_accuracy"] >= target), None)
    if hit is None:
        return None, records[-1]["val_accuracy"]
    after = sum(r["seconds"] for r in records[hit + 1:])
    return wall - after, records[hit]["val_accuracy"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="fewer steps and repetitions")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = p.parse_args()
    reps = 1 if args.quick else 2
    scale = 0.3 if args.quick else 1.0
    steps = lambda n: max(int(n * scale), 5)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    machine = f"{cpu}, {os.cpu_count()} cores, {platform.node()}"
    print(f"machine: {machine}", flush=True)
    r = {"machine": machine, "date": time.strftime("%Y-%m-%d %H:%M")}

    # W1: throughput, and the whole 10-epoch seed job.
    o, t = alternate(reps, lambda: ours("w1", 1, steps(20000), 1000),
                     lambda: theirs("w1", 1, steps(3000), 300))
    r["torch"] = t["framework"]
    r["torch_blas"] = t["blas"]
    print(f"PyTorch: {t['framework']}, BLAS: {t['blas']}", flush=True)
    r["w1"] = {"ours": o["samples_per_sec"], "torch": t["samples_per_sec"]}
    jobs_o, jobs_t = [], []
    for _ in range(3):
        jobs_o.append(timed_process([os.path.join(BUILD, "ddp_train"), "--config",
                                     "configs/seed_example.yaml", "--run-dir", "/tmp/ddp_cmp_seed"]))
        jobs_t.append(timed_process(TORCH + ["--seed-job"]))
    r["w1_job"] = {"ours_s": min(j[0] for j in jobs_o), "ours_rss_mb": min(j[1] for j in jobs_o),
                   "torch_s": min(j[0] for j in jobs_t), "torch_rss_mb": min(j[1] for j in jobs_t)}
    print(f"w1: {r['w1']}, job: {r['w1_job']}", flush=True)

    # W2 with and without denormals flushed, 1 rank; warm-up past the point where Adam's moments
    # for always-zero pixels turn denormal.
    r["w2"] = {}
    for ftz in (True, False):
        o, t = alternate(reps, lambda: ours("w2", 1, steps(600), 1000, ftz),
                         lambda: theirs("w2", 1, steps(300), 1000, ftz))
        r["w2"]["ftz" if ftz else "no_ftz"] = {"ours": o["samples_per_sec"],
                                               "torch": t["samples_per_sec"], "ours_phases": o["phase_ms"]}
    print(f"w2: {r['w2']}", flush=True)

    o, t = alternate(reps, lambda: ours("w3", 1, steps(40), 5), lambda: theirs("w3", 1, steps(30), 5))
    r["w3"] = {"ours": o["samples_per_sec"], "torch": t["samples_per_sec"], "ours_phases": o["phase_ms"]}
    print(f"w3: {r['w3']}", flush=True)

    # Scaling at 2 ranks x 1 thread, per-rank batch fixed.
    r["scaling"] = {}
    for w, (s2, wu) in {"w2": (steps(600), 1000), "w3": (steps(40), 5)}.items():
        o2, t2 = alternate(reps, lambda: ours(w, 2, s2, wu), lambda: theirs(w, 2, s2, wu, ftz=True))
        o1 = r[w]["ours"] if w == "w3" else r[w]["ftz"]["ours"]
        t1 = r[w]["torch"] if w == "w3" else r[w]["ftz"]["torch"]
        r["scaling"][w] = {"ours_2": o2["samples_per_sec"], "torch_2": t2["samples_per_sec"],
                           "ours_eff": o2["samples_per_sec"] / (2 * o1),
                           "torch_eff": t2["samples_per_sec"] / (2 * t1),
                           "ours_phases_2": o2["phase_ms"]}
    print(f"scaling: {r['scaling']}", flush=True)

    # W2 to 88% test accuracy: ddp-trainer on 2 ranks, PyTorch 1 process x 2 threads.
    tta_o, acc_o = time_to_accuracy_ours(0.88)
    tta_t = json_out(TORCH + ["--workload", "w2", "--time-to-accuracy", "0.88", "--threads", "2", "--ftz"])
    r["w2_tta"] = {"ours_s": tta_o, "ours_acc": acc_o, "torch_s": tta_t["seconds"],
                   "torch_epochs": tta_t["epochs"]}
    print(f"w2 time to 88%: {r['w2_tta']}", flush=True)

    # Gradient all-reduce path against raw MPI_Allreduce.
    subprocess.run(["mpirun", "-n", "2", os.path.join(BUILD, "bench_allreduce"), "--json",
                    "/tmp/ddp_allreduce.json"], check=True, env=ENV, capture_output=True)
    with open("/tmp/ddp_allreduce.json") as f:
        rows = json.load(f)["rows"]
    r["allreduce"] = rows
    big = [x["ratio"] for x in rows if x["bytes"] >= 1 << 20]

    w2f = r["w2"]["ftz"]
    faster_torch_w2 = max(w2f["torch"], r["w2"]["no_ftz"]["torch"])
    table = [
        ("W1", "samples/s, 1 rank", f"{r['w1']['torch']:,.0f}", f"{r['w1']['ours']:,.0f}",
         f"{r['w1']['ours'] / r['w1']['torch']:.1f}x", ">= 20x"),
        ("W1", "whole 10-epoch job: wall / peak RSS",
         f"{r['w1_job']['torch_s']:.2f} s / {r['w1_job']['torch_rss_mb']:.0f} MB",
         f"{r['w1_job']['ours_s']:.3f} s / {r['w1_job']['ours_rss_mb']:.0f} MB",
         f"{r['w1_job']['torch_s'] / r['w1_job']['ours_s']:.0f}x / {r['w1_job']['torch_rss_mb'] / r['w1_job']['ours_rss_mb']:.0f}x",
         "<= 0.1 s / <= 30 MB"),
        ("W2", "samples/s, 1 rank x 1 thread (FTZ on both)", f"{w2f['torch']:,.0f}",
         f"{w2f['ours']:,.0f}", f"{w2f['ours'] / faster_torch_w2:.2f}x vs the faster", ">= 1.5x"),
        ("W2", "same, denormals not flushed", f"{r['w2']['no_ftz']['torch']:,.0f}",
         f"{r['w2']['no_ftz']['ours']:,.0f}", f"{r['w2']['no_ftz']['ours'] / r['w2']['no_ftz']['torch']:.2f}x", ""),
        ("W3", "samples/s, 1 rank x 1 thread", f"{r['w3']['torch']:,.0f}", f"{r['w3']['ours']:,.0f}",
         f"{r['w3']['ours'] / r['w3']['torch']:.2f}x", ">= 1.4x"),
        ("W2", "scaling efficiency, 2 ranks", f"{r['scaling']['w2']['torch_eff']:.2f}",
         f"{r['scaling']['w2']['ours_eff']:.2f}", "", ">= 0.90"),
        ("W3", "scaling efficiency, 2 ranks", f"{r['scaling']['w3']['torch_eff']:.2f}",
         f"{r['scaling']['w3']['ours_eff']:.2f}", "", ">= 0.85"),
        ("W2", "wall time to 88% test accuracy", f"{r['w2_tta']['torch_s']:.1f} s (1 proc x 2 threads)",
         f"{r['w2_tta']['ours_s']:.1f} s (2 ranks)" if r['w2_tta']['ours_s'] else f"not reached ({acc_o:.4f})",
         f"{r['w2_tta']['ours_s'] / r['w2_tta']['torch_s']:.2f}x" if r['w2_tta']['ours_s'] else "", "<= 0.5x"),
        ("all-reduce", "busbw ours / raw MPI_Allreduce, >= 1 MB, 2 ranks", "", "",
         f"min {min(big):.2f}", ">= 0.9"),
    ]
    md = [f"Measured {r['date']} on {machine}; PyTorch {r['torch']} with {r['torch_blas']}.",
          "Command: `benchmarks/compare_pytorch.py` (ddp-trainer and PyTorch alternate in one run).", "",
          "| workload | metric | PyTorch | ddp-trainer | ratio | target |", "|---|---|---|---|---|---|"]
    md += ["| " + " | ".join(row) + " |" for row in table]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "compare_pytorch.json"), "w") as f:
        json.dump(r, f, indent=2)
    with open(os.path.join(args.out, "compare_pytorch.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
