"""Time to accuracy (issue #15): ddp-trainer and PyTorch trained from the same initial weights
to a test-accuracy target on 2 cores, one clock from process start to the end of the epoch that
reaches it, evaluation included on both sides; rows of benchmarks/compare_pytorch.py."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from bench_processes import BASE_ENV, ROOT, TIMEOUT_S, alternate, python_with
from compare_report import OURS_THREADS

# Time to accuracy: the config, the target and the epoch cap per workload (global batch 128).
TTA = {"w2": ("configs/fashion_mnist_mlp.yaml", 0.88, 30),
       "w4": ("configs/fashion_mnist_cnn.yaml", 0.92, 20)}


def ours_command(workload, init, seed, run_dir, threads=1, epochs=None):
    """ddp-trainer on 2 cores from `init`'s weights: 2 ranks of 64, or (threads 2) 1 rank of 128
    on 2 threads, the same global batches; the seed sets the data order and dropout masks, as
    PyTorch's seed sets its own. Up to the workload's epoch cap unless `epochs` is given."""
    config, _, cap = TTA[workload]
    ranks = 2 // threads
    return [os.path.join(ROOT, "launch", "ddp_run.sh"), "-n", str(ranks), "--threads",
            str(threads), "--config", config, "--run-dir", run_dir, "--init-from", init,
            "--set", f"seed={seed}", "--set", f"training.batch_size_per_rank={128 // ranks}",
            "--set", f"training.epochs={epochs or cap}"]


# No checkpoints (PyTorch's runs write none), and the last partial batch trained as PyTorch's is.
SAME_AS_PYTORCH = ["--set", "checkpoint.every_epochs=0", "--set", "training.tail=partial"]


def time_to_accuracy_ours(workload, init, seed, run_dir, threads=1):
    """Launch to the end of the epoch (evaluation included) that reached the target, one clock."""
    return train_to_target(ours_command(workload, init, seed, run_dir, threads), run_dir,
                           TTA[workload][1])


def train_to_target(command, run_dir, target):
    """Runs a ddp-trainer command (a --run-dir run_dir training) until its metrics show a
    val_accuracy of at least `target`, then stops it (as PyTorch's runs stop there: what comes
    after does not count, and would only make the benchmark longer). The time from launch to the
    end of that epoch, evaluation included; seconds None if the run ended short of the target."""
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not mixed with an earlier one
    metrics = os.path.join(run_dir, "metrics.jsonl")
    log_path = run_dir + ".log"

    def records():
        if not os.path.exists(metrics):
            return []
        with open(metrics) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    start = time.time()
    log_file = open(log_path, "w")
    proc = subprocess.Popen(command + SAME_AS_PYTORCH,
                            env=dict(BASE_ENV, OMP_NUM_THREADS="1"), cwd=ROOT,
                            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    while proc.poll() is None:
        if any(r["val_accuracy"] >= target for r in records()):
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            break
        if time.time() - start > TIMEOUT_S:
            os.killpg(proc.pid, signal.SIGKILL)
            sys.exit(f"time to accuracy: {command[0]} ran past {TIMEOUT_S} s")
        time.sleep(0.1)
    else:
        if proc.returncode != 0:
            with open(log_path) as f:
                sys.exit(f"time to accuracy: {' '.join(command)} failed "
                         f"({proc.returncode}): {f.read()[-2000:]}")
    log_file.close()
    done = records()
    hit = next((r for r in done if r["val_accuracy"] >= target), None)
    if hit is None:
        return {"seconds": None, "epochs": len(done), "accuracy": done[-1]["val_accuracy"]}
    return {"seconds": hit["unix_time"] - start, "epochs": hit["epoch"],
            "accuracy": hit["val_accuracy"]}


def time_to_accuracy_torch(workload, torch, flags, env, init, seed, epochs=None):
    """PyTorch as 1 process x 2 threads from `init` to the target; with `epochs`, that many
    epochs whatever the accuracy (a target above 1 is never reached)."""
    start = time.time()
    target = 2 if epochs else TTA[workload][1]
    r = torch.run(flags, env, "--workload", workload, "--time-to-accuracy", str(target),
                  "--epochs", str(epochs or 30), "--init-from", init, "--seed", str(seed),
                  "--threads", "2", "--cpus", "0,1", threads=2)
    return {"seconds": r["end_unix_time"] - start if r["reached"] else None,
            "epochs": r["epochs"], "accuracy": r["test_accuracy"],
            "accuracies": r["accuracies"]}


def time_to_accuracy_rows(workload, torches, seeds, log, keep=None):
    """W2 to 88% (W4 to 92%) test accuracy on 2 cores, global batch 128, Adam 1e-3, the same
    initial weights on both sides for each seed; ddp-trainer on 2 ranks, PyTorch 1 process x 2
    threads (W4: its variants with channels-last convolutions, the fastest in the throughput
    rows, without torch.compile, which was slower there)."""
    tta = {}
    init_dir = tempfile.mkdtemp(prefix="ddp_cmp_init_")
    exporter = next(t for t in torches if python_with(t.python, "safetensors"))
    for seed in range(seeds):
        init = os.path.join(init_dir, f"{workload}_seed{seed}.safetensors")
        subprocess.run([exporter.python, exporter.script(), "--export-init", init, "--seed",
                        str(seed), "--workload", workload], check=True, env=BASE_ENV,
                       capture_output=True)
        runners = {"ours": lambda init=init, seed=seed: time_to_accuracy_ours(
            workload, init, seed, os.path.join(init_dir, "run")),
                   OURS_THREADS: lambda init=init, seed=seed: time_to_accuracy_ours(
            workload, init, seed, os.path.join(init_dir, "run"), threads=2)}
        for t in torches:
            if not python_with(t.python, "safetensors"):
                continue
            variants = (t.variants(eager_defaults=False) if workload == "w2" else
                        t.variants(eager_defaults=False, compiled=False, channels_last=True))
            for name, (flags, env) in variants.items():
                if "detected" in name or (workload == "w4" and "channels-last" not in name):
                    continue
                if keep and name not in keep:
                    continue
                runners[name] = lambda t=t, flags=flags, env=env, init=init, seed=seed: \
                    time_to_accuracy_torch(workload, t, flags, env, init, seed)
        unknown = set(keep or ()) - set(runners)
        if unknown:
            sys.exit(f"compare_pytorch: --tta-variants: no variant {', '.join(sorted(unknown))} "
                     f"(there are: {', '.join(n for n in runners if not n.startswith('ours'))})")
        for name, runs in alternate(1, runners, log).items():
            tta.setdefault(name, []).extend(runs)
    shutil.rmtree(init_dir, ignore_errors=True)
    return tta
