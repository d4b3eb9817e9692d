#!/usr/bin/env python3
"""ddp-trainer against PyTorch (and, for W1, Keras) on this machine, in one run, alternating them,
and the ratios of issue #5's targets against the fastest competitor. Writes
benchmarks/results/compare_pytorch.{json,md}.
  benchmarks/setup_frameworks.sh && benchmarks/compare_pytorch.py [--quick]
Competitors: Debian's python3-torch (/usr/bin/python3) with the BLAS it maps (printed), and the
newest torch and tensorflow/keras from PyPI when benchmarks/setup_frameworks.sh installed them;
one thread per process; DDP with gloo for 2 ranks. ddp-trainer flushes denormals by default
(FTZ/DAZ); all sides are measured with and without for W2."""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
VENV = os.environ.get("DDP_BENCH_VENV", os.path.expanduser("~/.cache/ddp-bench-venv"))
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_pml="ob1", OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")

def openblas_coretype():
    """Note [OpenBLAS kernels]: ddp-trainer picks OpenBLAS's kernels from the CPU's feature bits
    (AVX-512 -> SkylakeX, AVX2 + FMA -> Haswell, Haswell on AMD Zen 4); Debian's PyTorch, which
    uses OpenBLAS too, gets the same choice here (src/backend/openblas_kernels.cpp)."""
    info = open("/proc/cpuinfo").read()
    field = lambda name: next((l.split(":", 1)[1].strip() for l in info.splitlines()
                               if l.startswith(name)), "")
    flags = set(field("flags").split())
    zen4 = field("vendor_id") == "AuthenticAMD" and field("cpu family") == "25" and \
        "avx512f" in flags
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags and not zen4:
        return "SkylakeX"
    return "Haswell" if {"avx2", "fma"} <= flags else ""


if openblas_coretype() and not ENV.get("OPENBLAS_CORETYPE"):
    ENV["OPENBLAS_CORETYPE"] = openblas_coretype()
CONFIGS = {"w1": "configs/w1_seed.yaml", "w2": "configs/w2_fmnist_mlp.yaml",
           "w3": "configs/w3_wide_mlp.yaml"}


def python_with(python, module):
    return os.path.exists(python) and subprocess.run(
        [python, "-c", f"import {module}"], capture_output=True, env=ENV).returncode == 0


def competitors():
    """{label: python} for each PyTorch installation found; Keras' python or None."""
    torches = {}
    for label, python in (("debian", "/usr/bin/python3"), ("pypi", os.path.join(VENV, "bin", "python"))):
        if python_with(python, "torch"):
            torches[label] = python
    keras = os.path.join(VENV, "bin", "python")
    return torches, (keras if python_with(keras, "tensorflow") else None)


def json_out(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True, env=ENV, check=True, cwd=ROOT).stdout
    return json.loads(out[out.index("{"):])


def ours(workload, ranks, steps, warmup, ftz=True):
    cmd = ["mpirun", "-n", str(ranks), os.path.join(BUILD, "ddp_bench"), "--config",
           CONFIGS[workload], "--steps", str(steps), "--warmup", str(warmup)]
    if not ftz:
        cmd += ["--set", "training.flush_denormals=false"]
    result = json_out(cmd)
    # A run that fell back from the expected gradient path would be a different benchmark: fail
    # loudly rather than let it into a best-of or a median.
    expected = "nothing to reduce" if ranks == 1 else "through shared memory"
    if expected not in result.get("gradient_sync", ""):
        sys.exit(f"compare_pytorch: {workload} at {ranks} rank(s) took another gradient path "
                 f"than expected ({expected}): {result.get('gradient_sync')}")
    return result


def torch_cmd(python):
    return [python, os.path.join(ROOT, "benchmarks", "torch_workloads.py")]


def theirs(python, workload, ranks, steps, warmup, ftz=False):
    cmd = torch_cmd(python) + ["--workload", workload, "--ranks", str(ranks), "--steps", str(steps),
                   "--warmup", str(warmup)] + (["--ftz"] if ftz else [])
    return json_out(cmd)


def best(runs):
    return max(runs, key=lambda r: r["samples_per_sec"])


def alternate(reps, runners):
    """Runs each of {name: runner} in turn, `reps` rounds; returns {name: best run}."""
    runs = {name: [] for name in runners}
    for _ in range(reps):
        for name, run in runners.items():
            runs[name].append(run())
    return {name: best(r) for name, r in runs.items()}


def timed_process(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                            cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0, f"{cmd} failed"
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def time_to_accuracy_ours(target):
    run_dir = "/tmp/ddp_compare_tta"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not mixed with an earlier one
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


def fmt_rate(x):
    return f"{x:,.0f}"


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
    torches, keras = competitors()
    if not torches:
        sys.exit("no PyTorch found: apt-get install python3-torch libopenblas0-openmp, "
                 "and/or benchmarks/setup_frameworks.sh")
    r = {"machine": machine, "date": time.strftime("%Y-%m-%d %H:%M"), "frameworks": {},
         "openblas_coretype": ENV.get("OPENBLAS_CORETYPE", "detected by OpenBLAS")}

    def runners(make_ours, make_theirs):
        return {"ours": make_ours, **{label: (lambda py=py: make_theirs(py)) for label, py in torches.items()}}

    def record(key, results, **extra):
        r[key] = {name: res["samples_per_sec"] for name, res in results.items()}
        r[key].update(extra)

    # W1: throughput, and the whole 10-epoch seed job.
    w1 = alternate(reps, runners(lambda: ours("w1", 1, steps(20000), 1000),
                                 lambda py: theirs(py, "w1", 1, steps(3000), 300)))
    if keras:
        w1.update(alternate(reps, {"keras": lambda: json_out([keras, os.path.join(ROOT, "benchmarks", "keras_seed.py"),
                                                             "--throughput", str(steps(30))])}))
    for name, res in w1.items():
        if name != "ours":
            r["frameworks"][name] = {"framework": res["framework"], "blas": res.get("blas", "")}
            print(f"{name}: {res['framework']}, BLAS: {res.get('blas', 'n/a')}", flush=True)
    record("w1", w1)
    jobs = {"ours": [os.path.join(BUILD, "ddp_train"), "--config", "configs/seed_example.yaml",
                     "--run-dir", "/tmp/ddp_cmp_seed"],
            **{label: torch_cmd(py) + ["--seed-job"] for label, py in torches.items()}}
    if keras:
        jobs["keras"] = [keras, os.path.join(ROOT, "benchmarks", "keras_seed.py")]
    timings = {name: [] for name in jobs}
    for _ in range(3):
        for name, cmd in jobs.items():
            shutil.rmtree("/tmp/ddp_cmp_seed", ignore_errors=True)  # a fresh run each time
            timings[name].append(timed_process(cmd))
    r["w1_job"] = {name: {"s": min(t[0] for t in ts), "rss_mb": min(t[1] for t in ts)}
                   for name, ts in timings.items()}
    print(f"w1: {r['w1']}, job: {r['w1_job']}", flush=True)

    # W2 with and without denormals flushed, 1 rank; warm-up past the point where Adam's moments
    # for always-zero pixels turn denormal.
    for ftz in (True, False):
        res = alternate(reps, runners(lambda: ours("w2", 1, steps(600), 1000, ftz),
                                      lambda py: theirs(py, "w2", 1, steps(300), 1000, ftz)))
        record("w2_ftz" if ftz else "w2_no_ftz", res, ours_phases=res["ours"]["phase_ms"])
    print(f"w2: {r['w2_ftz']}, without FTZ: {r['w2_no_ftz']}", flush=True)

    res = alternate(reps, runners(lambda: ours("w3", 1, steps(40), 5),
                                  lambda py: theirs(py, "w3", 1, steps(30), 5)))
    record("w3", res, ours_phases=res["ours"]["phase_ms"])
    print(f"w3: {r['w3']}", flush=True)

    # Scaling at 2 ranks x 1 thread, per-rank batch fixed; each side against its own 1-rank rate.
    r["scaling"] = {}
    for w, (s2, wu) in {"w2": (steps(600), 1000), "w3": (steps(40), 5)}.items():
        res = alternate(reps, runners(lambda: ours(w, 2, s2, wu),
                                      lambda py: theirs(py, w, 2, s2, wu, ftz=True)))
        one_rank = r["w2_ftz"] if w == "w2" else r["w3"]
        r["scaling"][w] = {name: {"samples_per_sec": x["samples_per_sec"],
                                  "efficiency": x["samples_per_sec"] / (2 * one_rank[name])}
                           for name, x in res.items()}
        r["scaling"][w]["ours"]["phases"] = res["ours"]["phase_ms"]
    print(f"scaling: {r['scaling']}", flush=True)

    # W2 to 88% test accuracy: ddp-trainer on 2 ranks, PyTorch 1 process x 2 threads.
    tta_o, acc_o = time_to_accuracy_ours(0.88)
    r["w2_tta"] = {"ours": {"s": tta_o, "accuracy": acc_o}}
    for label, py in torches.items():
        t = json_out(torch_cmd(py) + ["--workload", "w2", "--time-to-accuracy", "0.88", "--threads", "2", "--ftz"])
        r["w2_tta"][label] = {"s": t["seconds"], "epochs": t["epochs"], "accuracy": t["test_accuracy"]}
    print(f"w2 time to 88%: {r['w2_tta']}", flush=True)

    # Gradient all-reduce path against raw MPI_Allreduce: the best of `reps` runs of each.
    runs = []
    for _ in range(reps):
        subprocess.run(["mpirun", "-n", "2", os.path.join(BUILD, "bench_allreduce"), "--json",
                        "/tmp/ddp_allreduce.json"], check=True, env=ENV, capture_output=True)
        with open("/tmp/ddp_allreduce.json") as f:
            runs.append(json.load(f)["rows"])
    rows = []
    for sizes in zip(*runs):
        ours_bw = max(x["ours_busbw_gbs"] for x in sizes)
        raw_bw = max(x["raw_busbw_gbs"] for x in sizes)
        rows.append({"bytes": sizes[0]["bytes"], "ours_busbw_gbs": ours_bw, "raw_busbw_gbs": raw_bw,
                     "ratio": ours_bw / raw_bw, "buckets": sizes[0]["buckets"]})
    r["allreduce"] = rows
    big = [x["ratio"] for x in rows if x["bytes"] >= 1 << 20]

    write_results(r, big, args.out)


def fastest(values, higher_is_better=True):
    """(name, value) of the best competitor, ddp-trainer excluded."""
    others = {k: v for k, v in values.items() if k != "ours" and isinstance(v, (int, float))}
    pick = max if higher_is_better else min
    name = pick(others, key=others.get)
    return name, others[name]


def write_results(r, allreduce_ratios, out):
    names = {k: v["framework"] for k, v in r["frameworks"].items()}
    label = lambda k: names[k].split(" (")[0]
    w1_name, w1_best = fastest(r["w1"])
    job_s = {k: v["s"] for k, v in r["w1_job"].items()}
    job_name, _ = fastest(job_s, higher_is_better=False)
    job_o, job_t = r["w1_job"]["ours"], r["w1_job"][job_name]
    w2_best = max(max(v for k, v in r[key].items() if k not in ("ours", "ours_phases"))
                  for key in ("w2_ftz", "w2_no_ftz"))
    w2_name = next(k for key in ("w2_ftz", "w2_no_ftz") for k, v in r[key].items() if v == w2_best)
    w2n_name, w2n_best = fastest({k: v for k, v in r["w2_no_ftz"].items() if k != "ours_phases"})
    w3_name, w3_best = fastest({k: v for k, v in r["w3"].items() if k != "ours_phases"})
    # Scaling: the efficiency of the competitor with the highest 2-rank throughput (an efficiency
    # alone flatters whoever is slowest on one rank).
    eff = lambda w: {k: v["efficiency"] for k, v in r["scaling"][w].items()}
    two_ranks = lambda w: {k: v["samples_per_sec"] for k, v in r["scaling"][w].items()}
    e2_name, _ = fastest(two_ranks("w2"))
    e3_name, _ = fastest(two_ranks("w3"))
    e2, e3 = eff("w2")[e2_name], eff("w3")[e3_name]
    tta = r["w2_tta"]
    tta_name, tta_best = fastest({k: v["s"] for k, v in tta.items()}, higher_is_better=False)
    tta_o = tta["ours"]["s"]
    table = [
        ("W1", "samples/s, 1 rank", f"{fmt_rate(w1_best)} ({label(w1_name)})", fmt_rate(r["w1"]["ours"]),
         f"{r['w1']['ours'] / w1_best:.1f}x", ">= 20x"),
        ("W1", "whole 10-epoch job: wall / peak RSS",
         f"{job_t['s']:.2f} s / {job_t['rss_mb']:.0f} MB ({label(job_name)})",
         f"{job_o['s']:.3f} s / {job_o['rss_mb']:.0f} MB",
         f"{job_t['s'] / job_o['s']:.0f}x / {job_t['rss_mb'] / job_o['rss_mb']:.0f}x", "<= 0.1 s / <= 30 MB"),
        ("W2", "samples/s, 1 rank x 1 thread (FTZ on both)", f"{fmt_rate(w2_best)} ({label(w2_name)})",
         fmt_rate(r["w2_ftz"]["ours"]), f"{r['w2_ftz']['ours'] / w2_best:.2f}x vs the faster", ">= 1.5x"),
        ("W2", "same, denormals not flushed", f"{fmt_rate(w2n_best)} ({label(w2n_name)})",
         fmt_rate(r["w2_no_ftz"]["ours"]), f"{r['w2_no_ftz']['ours'] / w2n_best:.2f}x", ""),
        ("W3", "samples/s, 1 rank x 1 thread", f"{fmt_rate(w3_best)} ({label(w3_name)})",
         fmt_rate(r["w3"]["ours"]), f"{r['w3']['ours'] / w3_best:.2f}x", ">= 1.4x"),
        ("W2", "scaling efficiency, 2 ranks", f"{e2:.2f} ({label(e2_name)})", f"{eff('w2')['ours']:.2f}", "", ">= 0.90"),
        ("W3", "scaling efficiency, 2 ranks", f"{e3:.2f} ({label(e3_name)})", f"{eff('w3')['ours']:.2f}", "", ">= 0.85"),
        ("W2", "wall time to 88% test accuracy", f"{tta_best:.1f} s, 1 proc x 2 threads ({label(tta_name)})",
         f"{tta_o:.1f} s (2 ranks)" if tta_o else f"not reached ({tta['ours']['accuracy']:.4f})",
         f"{tta_o / tta_best:.2f}x" if tta_o else "", "<= 0.5x"),
        ("all-reduce", "busbw ours / raw MPI_Allreduce, >= 1 MB, 2 ranks", "", "",
         f"min {min(allreduce_ratios):.2f}", ">= 0.9"),
    ]
    competitors_line = "; ".join(f"{v['framework']}" + (f" with BLAS {v['blas']}" if v["blas"] else "")
                                 for v in r["frameworks"].values())
    md = [f"Measured {r['date']} on {r['machine']}.", f"Competitors: {competitors_line}.",
          f"OpenBLAS kernels, for ddp-trainer and Debian's PyTorch alike: {r['openblas_coretype']}.",
          "Command: `benchmarks/setup_frameworks.sh && benchmarks/compare_pytorch.py` (all frameworks "
          "alternate in one run; the competitor column is the fastest one for each row, by 2-rank "
          "throughput for the scaling rows).", "",
          "| workload | metric | fastest competitor | ddp-trainer | ratio | target |", "|---|---|---|---|---|---|"]
    md += ["| " + " | ".join(row) + " |" for row in table]
    # Every competitor, every row.
    cols = list(r["frameworks"])
    md += ["", "| metric | " + " | ".join(label(c) for c in cols) + " | ddp-trainer |",
           "|---|" + "---|" * (len(cols) + 1)]
    def row(metric, values, fmt):
        md.append(f"| {metric} | " + " | ".join(fmt(values[c]) if c in values else "-" for c in cols)
                  + f" | {fmt(values['ours'])} |")
    row("W1 samples/s", r["w1"], fmt_rate)
    row("W1 job wall (s) / peak RSS (MB)", r["w1_job"], lambda v: f"{v['s']:.2f} / {v['rss_mb']:.0f}")
    row("W2 samples/s, FTZ", r["w2_ftz"], fmt_rate)
    row("W2 samples/s, no FTZ", r["w2_no_ftz"], fmt_rate)
    row("W3 samples/s", r["w3"], fmt_rate)
    row("W2 2-rank samples/s (efficiency)", r["scaling"]["w2"],
        lambda v: f"{fmt_rate(v['samples_per_sec'])} ({v['efficiency']:.2f})")
    row("W3 2-rank samples/s (efficiency)", r["scaling"]["w3"],
        lambda v: f"{fmt_rate(v['samples_per_sec'])} ({v['efficiency']:.2f})")
    row("W2 time to 88% (s)", tta, lambda v: f"{v['s']:.1f}" if v["s"] else "not reached")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "compare_pytorch.json"), "w") as f:
        json.dump(r, f, indent=2)
    with open(os.path.join(out, "compare_pytorch.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    sys.exit(main())
