#!/usr/bin/env python3
"""Checkpoint scenarios through the executables, each with a time bound:
  resume_bit_identical   4 epochs straight == stop mid-epoch + --resume (2 ranks): identical
                         weights (bytes) and identical epoch lines
  early_stopping         a run that early stopping ends, stopped before that and resumed: the
                         same epochs, the same restored weights (bytes), nothing left after
  world_size_change      stop at 2 ranks, resume at 4 with the global batch fixed: <= 1e-5
  padded_tags            a tag per real token of padded texts (Note [masked positions]), 2
                         epochs straight == stopped mid-epoch and resumed at 2 ranks (bytes, epoch
                         lines), and resumed at 4 ranks within 1e-5
  killed_mid_write       the writer SIGKILLs itself part-way into a checkpoint (fault
                         injection); the previous checkpoint resumes to identical weights
  init_from              --init-from an export, no steps, export again: identical bytes
  fallback               a damaged latest checkpoint is skipped with a message
  sigkill                SIGKILL at random moments of a run that checkpoints every step never
                         leaves an invalid checkpoint file or a dangling `latest`
  safetensors            the exported file parses as safetensors, equals the checkpoint's
                         weights (ddp_ckpt export, also for a convnet with batch normalization), and a forward pass written here in plain Python reproduces
                         the trainer's val_loss; with use_ema, the one the log gives for the
                         averaged weights, which ddp_ckpt export --average writes too
"""

import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
import time

from scenarios import mpi_env, required_args, run_scenarios

LIMIT_S = 120


def run(cmd, env, expect=0):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=LIMIT_S,
                            stdin=subprocess.DEVNULL)
    if result.returncode != expect:
        raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}, expected {expect}\n"
                             f"stdout: {result.stdout[-2000:]}\nstderr: {result.stderr[-2000:]}")
    return result.stdout


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info
        begin, end = info["data_offsets"]
        raw = data[8 + length + begin:8 + length + end]
        values = list(struct.unpack(f"<{len(raw) // 4}f", raw))
        assert len(values) == math.prod(info["shape"]), name
        tensors[name] = (info["shape"], values)
    return header, tensors


def epoch_lines(stdout):
    # Timing fields differ between runs; everything else must not.
    return [re.sub(r" - \d+ samples/s - [\d.]+s$", "", l)
            for l in stdout.splitlines() if l.startswith("Epoch ")]


class Scenarios:
    def __init__(self, args, tmp):
        self.a = args
        self.tmp = tmp
        self.env = mpi_env()
        self.seed = os.path.join(args.configs, "seed_example.yaml")

    def train(self, ranks, run_dir, *extra, expect=0):
        return run([self.a.mpiexec, "-n", str(ranks), self.a.ddp_train, "--config", self.seed,
                    "--run-dir", run_dir, "--set", "training.epochs=4", *extra], self.env, expect)

    def resume_bit_identical(self):
        straight = self.train(2, f"{self.tmp}/a", "--export-safetensors", f"{self.tmp}/a.st")
        self.train(2, f"{self.tmp}/b", "--stop-after", "45")
        resumed = self.train(2, f"{self.tmp}/b", "--resume", "--export-safetensors", f"{self.tmp}/b.st")
        assert "resume: continuing from" in resumed and "at step 45" in resumed, resumed
        with open(f"{self.tmp}/a.st", "rb") as f, open(f"{self.tmp}/b.st", "rb") as g:
            assert f.read() == g.read(), "weights differ from the uninterrupted run"
        assert epoch_lines(resumed) == epoch_lines(straight)[1:], (epoch_lines(resumed),
                                                                   epoch_lines(straight))
        with open(f"{self.tmp}/b/metrics.jsonl") as f:
            assert [json.loads(l)["epoch"] for l in f] == [1, 2, 3, 4]
        # The closing summary covers the epochs this process ran: 2-4 after resuming at step 45.
        assert re.search(r"^done: epochs 2-4 of 4 in [\d.]+ s \(\d+ samples/s\); final loss "
                         r"[\d.]+, accuracy [\d.]+; best accuracy [\d.]+ at epoch \d$", resumed,
                         re.M), resumed[-1500:]
        # Resuming a finished run says so and trains nothing.
        again = self.train(2, f"{self.tmp}/b", "--resume")
        assert "resume: the run is already complete (4 of 4 epochs); nothing to train" in again, again
        assert "done: nothing left to train" in again and not epoch_lines(again), again
        # A checkpoint past the config's end (epoch 4 of a run now configured for 3) is not a
        # resume candidate: the epoch-3 one is, and that run is complete.
        shorter = self.train(2, f"{self.tmp}/b", "--resume", "--set", "training.epochs=3")
        assert re.search(r"resume: skipping checkpoint .*ckpt-0+128\.ddpc: epoch 4 is beyond "
                         r"training\.epochs \(3\)", shorter), shorter
        assert "resume: the run is already complete (3 of 3 epochs)" in shorter, shorter
        # A fresh run into that directory would mix with its checkpoints: refused, unless
        # --restart moves them (and metrics.jsonl) aside.
        refused = subprocess.run([self.a.mpiexec, "-n", "2", self.a.ddp_train, "--config",
                                  self.seed, "--run-dir", f"{self.tmp}/b"], capture_output=True,
                                 text=True, env=self.env, timeout=LIMIT_S)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count(f"{self.tmp}/b/checkpoints: holds checkpoints of an earlier "
                                    "run; continue it with --resume, or start over with "
                                    "--restart") == 1, refused.stderr
        restarted = self.train(2, f"{self.tmp}/b", "--restart")
        assert "restart: moved the earlier run's checkpoints to" in restarted, restarted
        assert epoch_lines(restarted) == epoch_lines(straight), "a restart is a fresh run"
        assert any(n.startswith("checkpoints-replaced-") for n in os.listdir(f"{self.tmp}/b"))

    def early_stopping(self):
        # Note [early stopping]: no epoch after the first improves the loss by 100, so patience 1
        # stops after epoch 2 of 4 and the run ends with epoch 1's weights. Stopped in epoch 2
        # (step 45) and resumed, it stops there too, with the same weights.
        early = [a for key, value in [("monitor", "loss"), ("min_delta", "100"), ("patience", "1"),
                                      ("restore_best_weights", "true")]
                 for a in ("--set", f"training.early_stopping.{key}={value}")]
        t = self.tmp
        straight = self.train(2, f"{t}/es_a", *early, "--export-safetensors", f"{t}/es_a.st")
        assert re.search(r"^Epoch 2: early stopping: loss has not improved on [\d.]+ \(epoch 1\) "
                         r"by more than 100 for 1 epoch$", straight, re.M), straight
        assert "early stopping: restored the weights of epoch 1, the best loss (" in straight
        assert len(re.findall(r"^Epoch \d/4 - ", straight, re.M)) == 2, straight
        self.train(2, f"{t}/es_b", *early, "--stop-after", "45")
        resumed = self.train(2, f"{t}/es_b", *early, "--resume", "--export-safetensors",
                             f"{t}/es_b.st")
        assert epoch_lines(resumed) == epoch_lines(straight)[1:], resumed
        self.train(2, f"{t}/es_c", "--set", "training.epochs=1", "--export-safetensors",
                   f"{t}/es_c.st")
        for other in ("es_b", "es_c"):
            with open(f"{t}/es_a.st", "rb") as f, open(f"{t}/{other}.st", "rb") as g:
                assert f.read() == g.read(), f"{other}: weights differ from es_a's"
        again = self.train(2, f"{t}/es_b", *early, "--resume")
        assert "resume: early stopping ended the run; nothing to train" in again, again
        # ddp_ckpt info shows the state and that the best weights travel with it.
        latest = sorted(n for n in os.listdir(f"{t}/es_b/checkpoints") if n.endswith(".ddpc"))[-1]
        info = run([self.a.ddp_ckpt, "info", f"{t}/es_b/checkpoints/{latest}"], self.env)
        assert re.search(r'^  early_stopping: \{.*"stopped_epoch":1.*\}$', info, re.M), info
        assert "  best epoch's weights: 5514 parameters" in info, info

    def killed_mid_write(self):
        self.train(2, f"{self.tmp}/f", "--stop-after", "40")
        env = dict(self.env, DDP_FAULT_KILL_AFTER_BYTES="3000")
        result = subprocess.run([self.a.mpiexec, "-n", "2", self.a.ddp_train, "--config", self.seed,
                                 "--run-dir", f"{self.tmp}/f", "--set", "training.epochs=4",
                                 "--resume"], capture_output=True, text=True, env=env,
                                timeout=LIMIT_S)
        assert result.returncode != 0, "the fault did not fire"
        ckdir = f"{self.tmp}/f/checkpoints"
        assert any(".tmp." in n for n in os.listdir(ckdir)), "no partial temporary file left"
        self.check_checkpoint_dir(ckdir)
        out = self.train(2, f"{self.tmp}/f", "--resume", "--export-safetensors", f"{self.tmp}/f.st")
        assert "at step 40" in out, out
        with open(f"{self.tmp}/a.st", "rb") as f, open(f"{self.tmp}/f.st", "rb") as g:
            assert f.read() == g.read(), "weights differ after the crash and resume"

    def init_from(self):
        self.train(2, f"{self.tmp}/i", "--init-from", f"{self.tmp}/a.st", "--stop-after", "0",
                   "--export-safetensors", f"{self.tmp}/i.st")
        with open(f"{self.tmp}/a.st", "rb") as f, open(f"{self.tmp}/i.st", "rb") as g:
            assert f.read() == g.read(), "--init-from did not load the exported weights"

    def world_size_change(self):
        self.train(2, f"{self.tmp}/c", "--stop-after", "45")
        out = self.train(4, f"{self.tmp}/c", "--resume", "--export-safetensors", f"{self.tmp}/c.st")
        assert "at step 45" in out
        _, a = read_safetensors(f"{self.tmp}/a.st")
        _, c = read_safetensors(f"{self.tmp}/c.st")
        worst = max(abs(x - y) for name in a for x, y in zip(a[name][1], c[name][1]))
        assert worst <= 1e-5, f"2 -> 4 ranks differs by {worst}"
        print(f"  max abs difference after changing 2 -> 4 ranks: {worst:.2e}")

    def padded_tags(self):
        tags = os.path.join(self.a.configs, "text_tagging.yaml")
        common = ["--config", tags, "--set", "training.epochs=2", "--set",
                  "data.train.min_length=6", "--set", "data.test.min_length=6", "--set",
                  "model.layers.0.mask_zero=true", "--set", "data.train.samples=1600"]

        def tagged(ranks, run_dir, *extra):
            return run([self.a.mpiexec, "-n", str(ranks), self.a.ddp_train, *common, "--run-dir",
                        run_dir, *extra], self.env)
        straight = tagged(2, f"{self.tmp}/tags", "--export-safetensors", f"{self.tmp}/tags.st")
        for ranks, name in ((2, "tags2"), (4, "tags4")):
            tagged(2, f"{self.tmp}/{name}", "--stop-after", "35")  # mid-epoch 2 of 25-step epochs
            resumed = tagged(ranks, f"{self.tmp}/{name}", "--resume", "--export-safetensors",
                             f"{self.tmp}/{name}.st")
            assert "at step 35" in resumed, resumed
            _, a = read_safetensors(f"{self.tmp}/tags.st")
            _, b = read_safetensors(f"{self.tmp}/{name}.st")
            worst = max(abs(x - y) for n in a for x, y in zip(a[n][1], b[n][1]))
            if ranks == 2:
                with open(f"{self.tmp}/tags.st", "rb") as f:
                    with open(f"{self.tmp}/tags2.st", "rb") as g:
                        assert f.read() == g.read(), "weights differ from the uninterrupted run"
                assert epoch_lines(resumed) == epoch_lines(straight)[1:], (
                    epoch_lines(resumed), epoch_lines(straight))
            assert worst <= 1e-5, f"resumed at {ranks} ranks differs by {worst}"
            print(f"  padded tags resumed at {ranks} ranks: max abs difference {worst:.2e}")

    def fallback(self):
        ckdir = f"{self.tmp}/b/checkpoints"
        with open(f"{ckdir}/latest") as f:
            latest = os.path.join(ckdir, f.read().strip())
        with open(latest, "r+b") as f:
            f.seek(-200, 2)
            byte = f.read(1)
            f.seek(-200, 2)
            f.write(bytes([byte[0] ^ 0xFF]))
        out = self.train(2, f"{self.tmp}/b", "--resume")
        assert "resume: skipping checkpoint " in out and "checksum mismatch" in out, out
        assert "resume: continuing from" in out

    def sigkill(self):
        cfg = f"{self.tmp}/wide.yaml"
        with open(cfg, "w") as f:
            f.write("""data:
  train: {type: synthetic, samples: 512, features: 512, classes: 10}
model:
  layers:
    - {type: dense, units: 1024, activation: relu}
    - {type: dense, units: 1024, activation: relu}
    - {type: dense, units: 10}
loss: sparse_categorical_crossentropy
optimizer: {type: adam}
training: {epochs: 1000, global_batch_size: 32}
checkpoint: {every_steps: 1, keep: 2}
""")
        run_dir = f"{self.tmp}/k"
        rng = random.Random(7)
        kills = 0
        deadline = time.monotonic() + 60
        while kills < 6 and time.monotonic() < deadline:
            proc = subprocess.Popen([self.a.ddp_train, "--config", cfg, "--run-dir", run_dir,
                                     "--resume"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=self.env)
            time.sleep(rng.uniform(0.3, 1.5))
            if proc.poll() is None:
                proc.kill()
                kills += 1
            proc.wait()
            self.check_checkpoint_dir(f"{run_dir}/checkpoints")
        assert kills >= 3, f"only {kills} kills landed"
        out = run([self.a.ddp_train, "--config", cfg, "--run-dir", run_dir, "--resume",
                   "--stop-after", "0"], self.env)
        assert "resume: continuing from" in out, out
        print(f"  {kills} SIGKILLs, every checkpoint left valid and resumable")

    def check_checkpoint_dir(self, ckdir):
        if not os.path.isdir(ckdir):
            return
        files = sorted(n for n in os.listdir(ckdir) if n.endswith(".ddpc"))
        for name in files:
            run([self.a.ddp_ckpt, "info", os.path.join(ckdir, name)], self.env)
        if os.path.exists(f"{ckdir}/latest"):
            with open(f"{ckdir}/latest") as f:
                assert f.read().strip() in files, "latest points at a missing checkpoint"

    def safetensors(self):
        header, weights = read_safetensors(f"{self.tmp}/a.st")
        assert header["__metadata__"]["format"] == "pt"
        assert sorted(n for n in header if n != "__metadata__") == sorted(
            f"layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")), list(header)
        assert weights["layers.0.weight"][0] == [64, 10]
        ckdir = f"{self.tmp}/a/checkpoints"
        with open(f"{ckdir}/latest") as f:
            latest = os.path.join(ckdir, f.read().strip())
        run([self.a.ddp_ckpt, "export", latest, f"{self.tmp}/a_from_ckpt.st"], self.env)
        _, from_ckpt = read_safetensors(f"{self.tmp}/a_from_ckpt.st")
        assert from_ckpt == weights

        # A convnet with batch normalization: the checkpoint's export converts to PyTorch's layout
        # (conv weights (F, C, kh, kw)) and carries the running statistics, as the trainer's does.
        run([self.a.mpiexec, "-n", "2", self.a.ddp_train, "--config",
             os.path.join(self.a.configs, "tiny_cnn.yaml"), "--run-dir", f"{self.tmp}/cnn",
             "--set", "model.layers.2={type: batch_normalization}", "--set", "training.epochs=1",
             "--export-safetensors", f"{self.tmp}/cnn.st"], self.env)
        with open(f"{self.tmp}/cnn/checkpoints/latest") as f:
            latest = os.path.join(f"{self.tmp}/cnn/checkpoints", f.read().strip())
        run([self.a.ddp_ckpt, "export", latest, f"{self.tmp}/cnn_from_ckpt.st"], self.env)
        _, cnn = read_safetensors(f"{self.tmp}/cnn.st")
        _, cnn_from_ckpt = read_safetensors(f"{self.tmp}/cnn_from_ckpt.st")
        assert cnn["layers.0.weight"][0] == [4, 1, 3, 3], cnn["layers.0.weight"][0]
        assert "layers.1.running_var" in cnn, sorted(cnn)
        assert cnn_from_ckpt == cnn, sorted(cnn_from_ckpt)

        # An independent forward pass: a CSV model trained with a test split, then val_loss
        # recomputed here from the exported weights and the same CSV rows.
        rows = [[(i % 7) / 7, (i % 5) / 5, (i % 3) / 3, i % 3] for i in range(60)]
        with open(f"{self.tmp}/t.csv", "w") as f:
            f.write("a,b,c,label\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
        with open(f"{self.tmp}/t.yaml", "w") as f:
            f.write(f"""data:
  train: {{type: csv, path: {self.tmp}/t.csv}}
  test: {{type: csv, path: {self.tmp}/t.csv}}
model:
  layers:
    - {{type: dense, units: 8, activation: tanh}}
    - {{type: dense, units: 3, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {{type: adam, learning_rate: 0.05}}
training: {{epochs: 5, global_batch_size: 12}}
""")
        def trained(name, *extra):
            return run([self.a.mpiexec, "-n", "2", self.a.ddp_train, "--config",
                        f"{self.tmp}/t.yaml", "--run-dir", f"{self.tmp}/{name}",
                        "--export-safetensors", f"{self.tmp}/{name}.st", *extra], self.env)

        def val_loss_of(weights_file):
            _, w = read_safetensors(weights_file)

            def dense(x, name, act):
                (out, inp), wv = w[f"{name}.weight"]
                b = w[f"{name}.bias"][1]
                return [act(sum(wv[o * inp + i] * x[i] for i in range(inp)) + b[o])
                        for o in range(out)]

            total = 0.0
            for r in rows:
                h = dense(r[:3], "layers.0", math.tanh)
                z = dense(h, "layers.1", lambda v: v)
                m = max(z)
                total += math.log(sum(math.exp(v - m) for v in z)) + m - z[int(r[3])]
            return total / len(rows)

        trained("t")
        with open(f"{self.tmp}/t/metrics.jsonl") as f:
            val_loss = [json.loads(l) for l in f][-1]["val_loss"]
        mine = val_loss_of(f"{self.tmp}/t.st")
        assert abs(mine - val_loss) <= 1e-5 * max(1, abs(val_loss)), (mine, val_loss)
        print(f"  val_loss from the exported weights in plain Python: {mine:.6f}, "
              f"trainer: {val_loss:.6f}")

        # Note [weight average]: with use_ema the model ends with the average, which the log's
        # last line evaluates; the final checkpoint keeps the parameters to train on, and
        # ddp_ckpt export --average writes the average from it.
        out = trained("ema", "--set", "optimizer.use_ema=true", "--set", "optimizer.ema_momentum=0.8")
        logged = re.search(r"^weight average: written into the model \(ema_momentum 0\.8\); with "
                           r"it val_loss ([\d.]+), val_accuracy [\d.]+$", out, re.M)
        assert logged, out[-1500:]
        averaged = val_loss_of(f"{self.tmp}/ema.st")
        assert abs(averaged - float(logged.group(1))) <= 6e-5, (averaged, logged.group(1))
        def latest_of(name):
            with open(f"{self.tmp}/{name}/checkpoints/latest") as f:
                return os.path.join(f"{self.tmp}/{name}/checkpoints", f.read().strip())

        latest = latest_of("ema")
        run([self.a.ddp_ckpt, "export", latest, f"{self.tmp}/ema_params.st"], self.env)
        run([self.a.ddp_ckpt, "export", latest, f"{self.tmp}/ema_average.st", "--average"],
            self.env)
        _, ended = read_safetensors(f"{self.tmp}/ema.st")
        _, params = read_safetensors(f"{self.tmp}/ema_params.st")
        _, average = read_safetensors(f"{self.tmp}/ema_average.st")
        assert average == ended != params, "ddp_ckpt export --average: not the model's weights"
        refused = subprocess.run([self.a.ddp_ckpt, "export", latest_of("t"), f"{self.tmp}/x.st",
                                  "--average"], capture_output=True, text=True, timeout=LIMIT_S)
        assert refused.returncode == 4 and refused.stderr == (
            f"ddp_ckpt: error: {latest_of('t')}: holds no weight average (its run did not set "
            "optimizer.use_ema)\n"), (refused.returncode, refused.stderr)
        print(f"  with use_ema: val_loss {averaged:.6f} from the exported average, logged "
              f"{logged.group(1)}")


def main():
    args = required_args("--ddp-train", "--ddp-ckpt", "--mpiexec", "--configs")
    with tempfile.TemporaryDirectory(prefix="ddp_ckpt_") as tmp:
        return run_scenarios("checkpoint scenarios", Scenarios(args, tmp),
                             ["resume_bit_identical", "early_stopping", "killed_mid_write", "init_from",
                              "world_size_change", "padded_tags", "fallback", "sigkill",
                              "safetensors"])


if __name__ == "__main__":
    sys.exit(main())
