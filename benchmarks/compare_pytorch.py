#!/usr/bin/env python3
"""ddp-trainer against the strongest PyTorch (and Keras, for W1) this machine has, in one run:
every competitor variant and ddp-trainer alternate, round by round (each round's order a row of a
Williams design, benchmarks/alternation.py), for --reps rounds; each row reports medians with
min-max, the competitor column is the variant with the best median, and a second table lists every
variant. Raw runs, commit, date, lscpu, load averages and each process's CPU binding go to
benchmarks/results/compare_pytorch.json; the tables to compare_pytorch.md (see
benchmarks/compare_report.py).
  benchmarks/setup_frameworks.sh && benchmarks/compare_pytorch.py [--reps 5] [--quick]
      [--only w1,w2,w3,2core,tta,allreduce,w4,w4tta,w5,w6,w7,w8,bf16]  (a subset:
      compare_pytorch_<subset>.*)
Competitors: Debian's python3-torch (OpenBLAS; with the OPENBLAS_CORETYPE ddp-trainer would choose
and with OpenBLAS's own detection), PyPI's newest torch (MKL; eager, foreach and fused optimizers,
torch.compile) and Keras from benchmarks/setup_frameworks.sh. The bf16 rows (not in the default
set) compare ddp-trainer's bf16 products (training.bf16_matmul) with PyTorch's
set_float32_matmul_precision("medium") and torch.autocast bf16. One process per core, pinned;
denormals flushed and not, both sides. A ddp-trainer run that took another gradient path than
expected fails the whole benchmark: it would be a different benchmark."""

import argparse
import json
import os
import shutil
import shlex
import subprocess
import sys
import tempfile

import compare_report
import provenance
from bench_processes import (BASE_ENV, BUILD, ROOT, TIMEOUT_S, VENV, alternate, python_with,
                             run_json, timed_process)
from time_to_accuracy import time_to_accuracy_rows

CONFIGS = {"w1": "configs/w1_seed.yaml", "w2": "configs/w2_fmnist_mlp.yaml",
           "w3": "configs/w3_wide_mlp.yaml", "w4": "configs/fashion_mnist_cnn.yaml",
           "w5": "configs/w5_text_lstm.yaml", "w6": "configs/w6_text_gru.yaml",
           "w7": "configs/w7_text_transformer.yaml", "w8": "configs/fashion_mnist_resnet.yaml"}
BATCH = {"w1": 32, "w2": 128, "w3": 64, "w4": 64, "w5": 64, "w6": 64, "w7": 64, "w8": 64}
GROUPS = ("w1", "w2", "w3", "2core", "tta", "allreduce", "w4", "w4tta", "w5", "w6", "w7", "w8")
EXTRA_GROUPS = ("bf16",)  # run when asked for with --only
BF16 = "training.bf16_matmul=true"
# The update after backward, as before Note [update in backward]: its phases give the roofline.
UPDATE_AFTER = compare_report.UPDATE_AFTER
OURS_THREADS = compare_report.OURS_THREADS
NO_UPDATE_IN_BACKWARD = "training.update_in_backward=false"


def isa_coretype():
    """Note [OpenBLAS kernels]: the OPENBLAS_CORETYPE ddp-trainer chooses from feature bits."""
    info = open("/proc/cpuinfo").read()
    field = lambda name: next((l.split(":", 1)[1].strip() for l in info.splitlines()
                               if l.startswith(name)), "")
    flags = set(field("flags").split())
    zen4 = field("vendor_id") == "AuthenticAMD" and field("cpu family") == "25"
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags and not zen4:
        return "SkylakeX"
    return "Haswell" if {"avx2", "fma"} <= flags else ""


class Torch:
    """One PyTorch installation: its python, what it supports, and its variants."""

    def __init__(self, label, python):
        self.label, self.python = label, python
        self.caps = run_json([python, self.script(), "--probe"])
        self.debian = label == "debian"

    def script(self):
        return os.path.join(ROOT, "benchmarks", "torch_workloads.py")

    def best_eager(self):
        """The optimizer implementation that is fastest where it exists: fused, else foreach."""
        return "fused" if self.caps["fused"] else "foreach"

    def variants(self, ftz_both=False, compiled=True, eager_defaults=True, channels_last=False,
                 bf16=False):
        """{name: (flags, env)}: eager with each optimizer implementation it has, torch.compile
        with the fastest one; denormals flushed (and, with ftz_both, the fastest eager variant
        without); Debian's OpenBLAS with ddp-trainer's kernel choice and with its own; with
        channels_last, the fastest eager variant with NHWC convolutions too. With bf16 instead:
        the fastest eager optimizer and torch.compile, each with matmul precision "medium" and
        with autocast."""
        if bf16:
            return self.bf16_variants(compiled, channels_last)
        impls = ["default", "foreach"] + (["fused"] if self.caps["fused"] else [])
        if not eager_defaults:
            impls = [self.best_eager()]
        kernels = {"OPENBLAS_CORETYPE": isa_coretype()} if self.debian and isa_coretype() else {}
        out = {}
        for impl in impls:
            out[f"{self.label} {impl}"] = (["--opt", impl, "--ftz"], kernels)
        best = ["--opt", self.best_eager()]
        if ftz_both:
            out[f"{self.label} {self.best_eager()} no-FTZ"] = (best, kernels)
        if kernels:
            out[f"{self.label} {self.best_eager()} OpenBLAS-detected"] = (best + ["--ftz"], {})
        if channels_last:
            out[f"{self.label} {self.best_eager()} channels-last"] = (
                best + ["--channels-last", "--ftz"], kernels)
        if compiled and self.caps["compile"]:
            out[f"{self.label} compile+{self.best_eager()}"] = (best + ["--compile", "--ftz"], {})
        return out

    def bf16_variants(self, compiled, channels_last):
        if not self.caps.get("bf16"):
            return {}
        forms = {"": []}
        if channels_last:
            forms["channels-last "] = ["--channels-last"]
        if compiled and self.caps["compile"]:
            forms["compile+"] = ["--compile"]
        return {f"{self.label} {form}{self.best_eager()} bf16 {mode}":
                (["--opt", self.best_eager(), "--bf16", mode, "--ftz", *flags], {})
                for form, flags in forms.items() for mode in ("medium", "autocast")}

    def run(self, flags, env, *args, threads=1):
        return run_json([self.python, self.script(), *flags, *args], threads, env)


def ours(workload, ranks, steps, warmup, overrides=(), expected_path=None, threads=1):
    """threads > 1: each rank bound to that many cores, its dense layers split over them."""
    binding = ["--map-by", f"slot:PE={threads}"] if threads > 1 else []
    cmd = ["mpirun", "-n", str(ranks), *binding, "--bind-to", "core",
           os.path.join(BUILD, "ddp_bench"), "--config", CONFIGS[workload], "--steps", str(steps),
           "--warmup", str(warmup)]
    if workload != "w1":  # the roofline's products need backward's updates timed; W1's step
        cmd.append("--profile-backward")  # is short enough for the clock reads to count (~3%)
    for o in [*overrides, *([f"training.threads_per_rank={threads}"] if threads > 1 else [])]:
        cmd += ["--set", o]
    result = run_json(cmd)
    expected = expected_path or ("nothing to reduce" if ranks == 1 else "through shared memory")
    if expected not in result.get("gradient_sync", ""):
        sys.exit(f"compare_pytorch: {workload} at {ranks} rank(s) took another gradient path "
                 f"than expected ({expected}): {result.get('gradient_sync')}")
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="fewer steps (a smoke test, not results)")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    p.add_argument("--only", default=",".join(GROUPS),
                   help=f"comma-separated subset of {', '.join(GROUPS + EXTRA_GROUPS)}")
    p.add_argument("--two-core", default="w2,w3",
                   help="comma-separated workloads of the 2core rows (default: w2,w3)")
    p.add_argument("--bf16", default="w2,w3,w4",
                   help="comma-separated workloads of the bf16 rows (default: w2,w3,w4)")
    p.add_argument("--tta-variants", help="comma-separated PyTorch variants for the time-to-"
                   "accuracy rows (default: all), e.g. the fastest of the throughput rows")
    args = p.parse_args()
    only = args.only.split(",")
    keep = args.tta_variants.split(",") if args.tta_variants else None
    if not set(only) <= set(GROUPS + EXTRA_GROUPS):
        sys.exit(f"compare_pytorch: --only {args.only}: choose from "
                 f"{', '.join(GROUPS + EXTRA_GROUPS)}")
    scale = 0.2 if args.quick else 1.0
    steps = lambda n: max(int(n * scale), 3)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)

    torches = [Torch(label, py) for label, py in (("debian", "/usr/bin/python3"),
                                                   ("pypi", os.path.join(VENV, "bin", "python")))
               if python_with(py, "torch")]
    keras = os.path.join(VENV, "bin", "python")
    keras = keras if python_with(keras, "tensorflow") else None
    if not torches:
        sys.exit("no PyTorch found: apt-get install python3-torch libopenblas0-openmp, "
                 "and/or benchmarks/setup_frameworks.sh")
    r = {"provenance": provenance.record(), "reps": args.reps, "quick": args.quick,
         "order": "each round's order a row of a Williams design (no variant always after the "
                  "same one)",
         "arguments": [shlex.quote(a) for a in sys.argv[1:]],
         "only": only if set(only) != set(GROUPS) else None,
         "frameworks": {t.label: t.caps for t in torches}, "rows": {}}
    r["roofline"] = run_json([os.path.join(BUILD, "bench_roofline")])
    log(f"roofline: {r['roofline']}")
    suffix = "" if set(only) == set(GROUPS) else "_" + "_".join(only)

    def save(final):
        """Written after every row too, so that a run cut short keeps the rows it finished."""
        r["complete"] = final
        r["provenance"]["load_average_end"] = os.getloadavg()
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, f"compare_pytorch{suffix}.json"), "w") as f:
            json.dump(r, f, indent=1)
        text = compare_report.render(r)
        if not final:
            text = (f"**Partial**: the run had finished only the rows {', '.join(r['rows'])} "
                    "when this was written.\n\n" + text)
        with open(os.path.join(args.out, f"compare_pytorch{suffix}.md"), "w") as f:
            f.write(text)
        return text

    def row(key, runners):
        log(f"{key}: {len(runners)} variants x {args.reps}")
        r["rows"][key] = alternate(args.reps, runners, log)
        save(final=False)

    def torch_runners(workload, ranks, threads, batch, steps_, warmup, **variant_args):
        out = {}
        cpus = "0,1" if max(ranks, threads) > 1 else "0"
        for t in torches:
            for name, (flags, env) in t.variants(**variant_args).items():
                out[name] = (lambda t=t, flags=flags, env=env: t.run(
                    flags, env, "--workload", workload, "--ranks", str(ranks), "--threads",
                    str(threads), "--batch", str(batch), "--steps", str(steps_), "--warmup",
                    str(warmup), "--cpus", cpus, threads=threads))
        return out

    # W1: throughput, and the whole 10-epoch seed job (a plain process, and under mpirun).
    if "w1" in only:
        w1_rows(row, torch_runners, torches, keras, steps)
    if "w2" in only:
        # One rank x one thread, denormals flushed and not, on both sides.
        row("w2", {"ours": lambda: ours("w2", 1, steps(600), 1000),
                   "ours no-FTZ": lambda: ours("w2", 1, steps(600), 1000,
                                               ["training.flush_denormals=false"]),
                   UPDATE_AFTER: lambda: ours("w2", 1, steps(600), 1000, [NO_UPDATE_IN_BACKWARD]),
                   **torch_runners("w2", 1, 1, 128, steps(300), 1000, ftz_both=True)})
    if "w3" in only:
        row("w3", {"ours": lambda: ours("w3", 1, steps(40), 5),
                   UPDATE_AFTER: lambda: ours("w3", 1, steps(40), 5, [NO_UPDATE_IN_BACKWARD]),
                   **torch_runners("w3", 1, 1, 64, steps(30), 5)})
    two_core = dict(compiled=False, eager_defaults=False)
    if "2core" in only:
        for w, (s, wu) in {"w2": (steps(600), 200), "w3": (steps(40), 5)}.items():
            if w in args.two_core.split(","):
                two_core_rows(row, torch_runners, w, s, wu, two_core)
    if "tta" in only:
        r["rows"]["w2_tta"] = time_to_accuracy_rows("w2", torches, args.reps, log, keep)
        save(final=False)
    if "w4tta" in only:
        r["rows"]["w4_tta"] = time_to_accuracy_rows("w4", torches, args.reps, log, keep)
        save(final=False)
    if "allreduce" in only:
        row("allreduce", {"ours": allreduce})
    for w in ("w4", "w8"):
        if w not in only:
            continue
        # The convnet (W4) or the ResNet (W8): 1 x 1, and 2 cores (weak scaling), with NHWC
        # convolutions as a variant.
        row(w, {"ours": lambda w=w: ours(w, 1, steps(100), 10),
                **torch_runners(w, 1, 1, 64, steps(100), 10, channels_last=True)})
        two_core_rows(row, torch_runners, w, steps(100), 10, dict(two_core, channels_last=True),
                      strong=False)

    for w in ("w5", "w6", "w7"):
        if w not in only:
            continue
        # The LSTM (W5), GRU (W6) or transformer (W7) text classifier: 1 x 1, and 2 cores (weak
        # scaling).
        row(w, {"ours": lambda w=w: ours(w, 1, steps(300), 30),
                **torch_runners(w, 1, 1, 64, steps(200), 20)})
        two_core_rows(row, torch_runners, w, steps(300), 30, two_core, strong=False)

    if "bf16" in only:
        # bf16 products, one rank x one thread; ours in fp32 beside them, for the gain.
        shapes = {"w2": (steps(600), steps(300), 1000, 128), "w3": (steps(40), steps(30), 5, 64),
                  "w4": (steps(100), steps(100), 10, 64)}
        for w in args.bf16.split(","):
            s, torch_steps, wu, batch = shapes[w]
            row(f"{w}_bf16", {"ours": lambda w=w, s=s, wu=wu: ours(w, 1, s, wu, [BF16]),
                              "ours fp32": lambda w=w, s=s, wu=wu: ours(w, 1, s, wu),
                              **torch_runners(w, 1, 1, batch, torch_steps, wu, bf16=True,
                                              channels_last=w == "w4")})

    print(save(final=True))


def w1_rows(row, torch_runners, torches, keras, steps):
    w1 = {"ours": lambda: ours("w1", 1, steps(20000), 1000),
          **torch_runners("w1", 1, 1, 32, steps(3000), 300)}
    if keras:
        script = os.path.join(ROOT, "benchmarks", "keras_seed.py")
        w1["keras"] = lambda: run_json([keras, script, "--throughput", str(steps(30))])
    row("w1", w1)
    seed_dir = tempfile.mkdtemp(prefix="ddp_cmp_seed_")
    seed_cmd = [os.path.join(BUILD, "ddp_train"), "--config", "configs/seed_example.yaml",
                "--run-dir", seed_dir]

    def seed_job(cmd):
        shutil.rmtree(seed_dir, ignore_errors=True)  # a fresh run each time
        return timed_process(cmd)

    jobs = {"ours": lambda: seed_job(seed_cmd),
            "ours under mpirun -n 1": lambda: seed_job(["mpirun", "-n", "1", *seed_cmd])}
    for t in torches:
        for name, (flags, env) in t.variants(compiled=False).items():
            jobs[name] = lambda t=t, flags=flags: timed_process(
                [t.python, t.script(), "--seed-job", "--cpus", "0", *flags])
    if keras:
        jobs["keras"] = lambda: timed_process([keras, os.path.join(ROOT, "benchmarks",
                                                                   "keras_seed.py")])
    row("w1_job", jobs)
    shutil.rmtree(seed_dir, ignore_errors=True)


def two_core_rows(row, torch_runners, w, steps_, warmup, variant_args, strong=True):
    """Two cores: weak scaling (per-rank batch B, global 2B) and strong (global B) for ours
    (2 ranks) and PyTorch's two ways of using 2 cores (1 process x 2 threads, DDP 2 x 1)."""
    b = BATCH[w]
    row(f"{w}_2core_weak", {
        "ours": lambda: ours(w, 2, steps_, warmup),
        OURS_THREADS: lambda: ours(w, 1, steps_, warmup, [f"training.batch_size_per_rank={2 * b}"],
                                   threads=2),
        **{f"{k} 1x2 threads": v for k, v in torch_runners(w, 1, 2, 2 * b, steps_, warmup,
                                                           **variant_args).items()},
        **{f"{k} DDP 2x1": v for k, v in torch_runners(w, 2, 1, b, steps_, warmup,
                                                       **variant_args).items()}})
    if strong:
        row(f"{w}_2core_strong", {
            "ours": lambda: ours(w, 2, steps_, warmup, [f"training.batch_size_per_rank={b // 2}"]),
            OURS_THREADS: lambda: ours(w, 1, steps_, warmup, threads=2),
            **{f"{k} 1x2 threads": v for k, v in torch_runners(w, 1, 2, b, steps_, warmup,
                                                               **variant_args).items()},
            **{f"{k} DDP 2x1": v for k, v in torch_runners(w, 2, 1, b // 2, steps_, warmup,
                                                           **variant_args).items()}})


def allreduce():
    """The gradient all-reduce path against raw MPI_Allreduce, 2 ranks."""
    with tempfile.TemporaryDirectory(prefix="ddp_cmp_allreduce_") as tmp:
        path = os.path.join(tmp, "allreduce.json")
        subprocess.run(["mpirun", "-n", "2", "--bind-to", "core",
                        os.path.join(BUILD, "bench_allreduce"), "--json", path], check=True,
                       env=BASE_ENV, capture_output=True, timeout=TIMEOUT_S)
        with open(path) as f:
            return {"rows": json.load(f)["rows"]}


if __name__ == "__main__":
    sys.exit(main())
