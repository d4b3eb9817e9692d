#!/usr/bin/env python3
"""Reliability scenarios through the executables (issue: ranks failing, hanging, drifting, NaNs):
  supervisor_restart  rank 1 SIGKILLed mid-epoch under launch/supervise.sh: the job restarts from
                      its last checkpoint and ends with weights bit-identical to an uninterrupted run
  hang_watchdog       rank 1 stalls before a collective: the watchdog ends the job within the
                      timeout plus a few seconds, naming the step and the collective; nothing is
                      left running
  drift               rank 1's parameters are perturbed: the next replica check names the tensor
                      and the rank
  nonfinite_stop      an absurd learning rate: stops with the step named
  nonfinite_skip      the same with nonfinite: skip: finishes and reports the skipped steps; with
                      gradient clipping too, which reports the steps it clipped
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from scenarios import mpi_env, required_args, run_scenarios

LIMIT_S = 120


class Scenarios:
    def __init__(self, args, tmp):
        self.a = args
        self.tmp = tmp
        self.env = mpi_env()
        self.seed = os.path.join(args.root, "configs", "seed_example.yaml")

    def mpirun(self, run_dir, *extra, ranks=2):
        cmd = [self.a.mpiexec, "-n", str(ranks), self.a.ddp_train, "--config", self.seed,
               "--run-dir", run_dir, "--set", "training.epochs=4", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=LIMIT_S,
                              stdin=subprocess.DEVNULL)

    def supervisor_restart(self):
        common = ["--set", "checkpoint.every_steps=10"]
        straight = self.mpirun(f"{self.tmp}/a", *common, "--export-safetensors", f"{self.tmp}/a.st")
        assert straight.returncode == 0, straight.stderr
        marker = f"{self.tmp}/killed.once"
        cmd = [os.path.join(self.a.root, "launch", "supervise.sh"), "--max-restarts", "2",
               "--backoff", "0", "--", "-n", "2", "--config", self.seed, "--run-dir",
               f"{self.tmp}/b", "--set", "training.epochs=4", *common,
               "--fault-inject", f"kill@rank=1,step=45,once={marker}",
               "--export-safetensors", f"{self.tmp}/b.st"]
        # The executable under test, not whatever build/ the source tree may hold.
        env = dict(self.env, PATH=os.path.dirname(self.a.mpiexec) + ":" + self.env["PATH"],
                   DDP_TRAIN=self.a.ddp_train)
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=LIMIT_S,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert os.path.exists(marker), "the fault never fired"
        assert "supervise: job failed with exit code" in result.stderr, result.stderr[-2000:]
        assert "resume: continuing from" in result.stdout and "at step 40" in result.stdout, \
            result.stdout[-2000:]
        with open(f"{self.tmp}/a.st", "rb") as f, open(f"{self.tmp}/b.st", "rb") as g:
            assert f.read() == g.read(), "weights after the restart differ from the straight run"

    def launcher_output(self):
        """launch/ddp_run.sh: a failing rank's one error line and the exit code, without mpirun's
        exit-code banners; Open MPI's own errors (not enough slots) still shown."""
        env = dict(self.env, PATH=os.path.dirname(self.a.mpiexec) + ":" + self.env["PATH"],
                   DDP_TRAIN=self.a.ddp_train)
        launcher = os.path.join(self.a.root, "launch", "ddp_run.sh")
        bad = [launcher, "-n", "2", "--config", f"{self.tmp}/missing.yaml"]
        kept = subprocess.run(bad, capture_output=True, text=True, timeout=LIMIT_S,
                              env=dict(env, DDP_KEEP_MPI_BANNERS="1"), stdin=subprocess.DEVNULL)
        assert "non-zero exit code" in kept.stderr, kept.stderr  # what the filter must remove
        result = subprocess.run(bad, capture_output=True, text=True, env=env, timeout=LIMIT_S,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 2, (result.returncode, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and "ddp_train: error: " in lines[0] and "missing.yaml" in lines[0], \
            result.stderr
        with open(f"{self.tmp}/one_slot", "w") as f:
            f.write("localhost slots=1\n")
        env.pop("OMPI_MCA_rmaps_base_oversubscribe", None)
        slots = subprocess.run([launcher, "-n", "2", "--hostfile", f"{self.tmp}/one_slot",
                                "--config", self.seed], capture_output=True, text=True, env=env,
                               timeout=LIMIT_S, stdin=subprocess.DEVNULL)
        assert slots.returncode != 0 and "not enough slots" in slots.stderr, slots.stderr
        # --threads N: the rank's products on N threads (Note [threads per rank]).
        threads = subprocess.run([launcher, "-n", "1", "--threads", "2", "--config", self.seed,
                                  "--run-dir", f"{self.tmp}/threads"], capture_output=True,
                                 text=True, env=env, timeout=LIMIT_S, stdin=subprocess.DEVNULL)
        assert (threads.returncode == 0 and
                "dense layers and convolutions on 2 threads" in threads.stdout), \
            threads.stdout[-2000:] + threads.stderr[-2000:]
        none = subprocess.run([launcher, "--threads", "0", "--config", self.seed],
                              capture_output=True, text=True, env=env, timeout=LIMIT_S,
                              stdin=subprocess.DEVNULL)
        assert none.returncode == 2 and "--threads 0: the number of threads must be a positive" \
            in none.stderr, none.stderr

    def hang_watchdog(self):
        start = time.monotonic()
        result = self.mpirun(f"{self.tmp}/h", "--set", "training.collective_timeout_s=3",
                             "--fault-inject", "stall@rank=1,step=5,seconds=60")
        seconds = time.monotonic() - start
        assert result.returncode != 0
        assert seconds < 3 + 10, f"the job took {seconds:.1f} s to end"
        # The collective it names: step 6's first, the ranks' agreement on step 5's non-finite
        # verdict, read a step late (Note [deferred readback]).
        assert "watchdog: step 6 has been in agreement (all-reduce max)" in result.stderr, \
            result.stderr[-2000:]
        time.sleep(0.5)
        left = subprocess.run(["pgrep", "-f", f"{self.tmp}/h"], capture_output=True, text=True)
        assert left.stdout.strip() == "", f"processes left running: {left.stdout}"
        print(f"  watchdog ended the job after {seconds:.1f} s (timeout 3 s)")

    def drift(self):
        # Replicated: under ZeRO-1 (the default here) every step rewrites each rank's copy of the
        # parameters from their owners, so a perturbed copy heals or spreads instead of drifting.
        result = self.mpirun(f"{self.tmp}/d", "--set", "training.check_replicas_every=5",
                             "--set", "training.zero=0",
                             "--fault-inject", "perturb@rank=1,step=7")
        assert result.returncode == 1, result.stderr[-2000:]
        assert ("replica drift after step 10: layers.1.weight differs from rank 0 on 1 of 2 ranks "
                "(rank 1)") in result.stderr, result.stderr[-2000:]

    def nonfinite_stop(self):
        result = self.mpirun(f"{self.tmp}/n", "--set", "optimizer.learning_rate=1e30")
        assert result.returncode == 1, result.stderr[-2000:]
        assert "non-finite gradients at step" in result.stderr, result.stderr[-2000:]

    def nonfinite_skip(self):
        result = self.mpirun(f"{self.tmp}/s", "--set", "optimizer.learning_rate=1e30",
                             "--set", "training.nonfinite=skip")
        assert result.returncode == 0, result.stderr[-2000:]
        assert "non-finite step(s)" in result.stdout, result.stdout[-2000:]
        # Clipping reads the sums after the finiteness check (Note [gradient clipping]).
        result = self.mpirun(f"{self.tmp}/c", "--set", "optimizer.learning_rate=1e30",
                             "--set", "training.nonfinite=skip", "--set",
                             "optimizer.global_clipnorm=0.01")
        assert result.returncode == 0, result.stderr[-2000:]
        assert "non-finite step(s) - clipped " in result.stdout, result.stdout[-2000:]
        with open(f"{self.tmp}/c/metrics.jsonl") as f:
            records = [json.loads(line) for line in f]
        assert sum(r["clipped_steps"] for r in records) > 0, records


def main():
    args = required_args("--ddp-train", "--mpiexec", "--root")
    with tempfile.TemporaryDirectory(prefix="ddp_rel_") as tmp:
        return run_scenarios("reliability scenarios", Scenarios(args, tmp),
                             ["supervisor_restart", "launcher_output", "hang_watchdog", "drift", "nonfinite_stop",
                              "nonfinite_skip"])


if __name__ == "__main__":
    sys.exit(main())
