"""How the benchmark scripts run what they measure: the repository's paths, the environment
every measured process gets, JSON-printing commands, and rounds of alternated runs."""

import json
import os
import subprocess
import sys
import time

import provenance
from alternation import round_orders

ROOT = provenance.ROOT
BUILD = os.path.join(ROOT, "build")
VENV = os.environ.get("DDP_BENCH_VENV", os.path.expanduser("~/.cache/ddp-bench-venv"))
BASE_ENV = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "DDP_GEMM")}
BASE_ENV.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_pml="ob1",
                TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
TIMEOUT_S = 900


def run_json(cmd, threads=1, extra_env=None):
    env = dict(BASE_ENV, OMP_NUM_THREADS=str(threads), **(extra_env or {}))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, cwd=ROOT,
                         timeout=TIMEOUT_S).stdout
    return json.loads(out[out.index("{"):])


def ddp_bench(config, ranks, steps, warmup, overrides=()):
    """ddp_bench's JSON result for `config` (a path from the repository root) under mpirun."""
    cmd = ["mpirun", "-n", str(ranks), os.path.join(BUILD, "ddp_bench"), "--config", config,
           "--steps", str(steps), "--warmup", str(warmup)]
    for o in overrides:
        cmd += ["--set", o]
    return run_json(cmd)


def python_with(python, module):
    return os.path.exists(python) and subprocess.run(
        [python, "-c", f"import {module}"], capture_output=True, env=BASE_ENV).returncode == 0


def alternate(reps, runners, log):
    """{name: [result, ...]}: each round runs every runner once, in the order of a Williams design
    (benchmarks/alternation.py), so that no variant always runs first or right after the same
    neighbour."""
    names = list(runners)
    runs = {name: [] for name in names}
    for r, order in enumerate(round_orders(len(names), reps)):
        start = time.perf_counter()
        for i in order:
            runs[names[i]].append(runners[names[i]]())
        log(f"  round {r + 1}/{reps} done in {time.perf_counter() - start:.0f} s")
    return runs


def timed_process(cmd, threads=1):
    start = time.perf_counter()
    env = dict(BASE_ENV, OMP_NUM_THREADS=str(threads))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"compare_pytorch: {' '.join(cmd)} failed ({status})")
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": usage.ru_maxrss / 1024}
