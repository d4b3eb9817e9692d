#!/usr/bin/env python3
"""The Slurm batch scripts against a real Slurm: a one-node cluster (munged, slurmctld, slurmd;
proctrack/linuxproc, no cgroups) configured and started in a private directory, on free ports of
127.0.0.1, and stopped afterwards.
  cpu_script     sbatch launch/slurm/cpu.sbatch (2 tasks) trains the seed example: exit 0, ten
                 epochs in metrics.jsonl, weights bit-identical to mpiexec -n 2 outside Slurm
  srun_pmix      the same job started by srun --mpi=pmix instead of mpirun (where Slurm has pmix)
  gpu_script     sbatch launch/slurm/gpu.sbatch on this GPU-less node: the job fails with
                 ddp_train's error that there is no CUDA device (or no CUDA backend), not a
                 CPU run
  nothing_left   no slurmstepd or ddp_train of the test's jobs survives
Exits 77 (skipped) where Slurm is not installed, not root, or its daemons do not start."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from scenarios import mpi_env, required_args, run_scenarios  # noqa: E402

TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "scancel", "srun")
JOB_LIMIT_S = 120


class SkipTest(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """munged + slurmctld + slurmd, all state under `tmp`; SLURM_CONF in `env` reaches them."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.node = socket.gethostname().split(".")[0]
        self.env = dict(os.environ, SLURM_CONF=f"{tmp}/slurm.conf")
        self.daemons = []

    def start(self):
        t = self.tmp
        for d in ("state", "spool", "log"):
            os.makedirs(f"{t}/{d}")
        with open(f"{t}/munge.key", "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(f"{t}/munge.key", 0o400)
        self.daemon("munged", ["munged", "--force", f"--key-file={t}/munge.key",
                               f"--socket={t}/munge.sock", f"--pid-file={t}/munged.pid",
                               f"--log-file={t}/log/munged.log", f"--seed-file={t}/munged.seed"],
                    f"{t}/munged.pid")
        with open(f"{t}/slurm.conf", "w") as f:
            f.write(f"""ClusterName=ddptest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={t}/munge.sock
CredType=cred/munge
StateSaveLocation={t}/state
SlurmdSpoolDir={t}/spool
SlurmctldPidFile={t}/slurmctld.pid
SlurmdPidFile={t}/slurmd.pid
SlurmctldLogFile={t}/log/slurmctld.log
SlurmdLogFile={t}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=test Nodes={self.node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
""")
        conf = f"{t}/slurm.conf"
        self.daemon("slurmctld", ["slurmctld", "-f", conf], f"{t}/slurmctld.pid")
        self.daemon("slurmd", ["slurmd", "-f", conf, "-N", self.node], f"{t}/slurmd.pid")
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                                   env=self.env).stdout.strip()
            if state == "idle":
                return
            time.sleep(0.5)
        raise SkipTest(f"the node is not idle after 30 s (sinfo: {state!r}); "
                       f"slurmd log: {self.log_tail('slurmd')}")

    def daemon(self, name, cmd, pid_file):
        run = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
        if run.returncode != 0:
            raise SkipTest(f"{name} does not start here: {run.stderr.strip()[-300:]} "
                           f"{self.log_tail(name)}")
        deadline = time.monotonic() + 10
        while not os.path.exists(pid_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not os.path.exists(pid_file):
            raise SkipTest(f"{name} wrote no pid file: {self.log_tail(name)}")
        self.daemons.append((name, pid_file))

    def log_tail(self, name):
        try:
            with open(f"{self.tmp}/log/{name}.log") as f:
                return " | ".join(f.read().splitlines()[-3:])
        except OSError:
            return "(no log)"

    def stop(self):
        subprocess.run(["scancel", "--full", "--user", "root"], capture_output=True, env=self.env)
        for name, pid_file in reversed(self.daemons):
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass  # gone


class Scenarios:
    def __init__(self, args, cluster):
        self.a = args
        self.c = cluster
        self.t = cluster.tmp
        self.seed = os.path.join(args.root, "configs", "seed_example.yaml")
        self.train_args = ["--config", self.seed, "--progress", "off"]

    def sbatch(self, name, options, script_args):
        """Submits and waits; returns (exit code, the job's output)."""
        out = f"{self.t}/{name}.out"
        env = dict(mpi_env(DDP_TRAIN=self.a.ddp_train), SLURM_CONF=self.c.env["SLURM_CONF"])
        run = subprocess.run(["sbatch", "--wait", "--output", out, *options, *script_args],
                             capture_output=True, text=True, env=env, cwd=self.a.root,
                             timeout=JOB_LIMIT_S)
        text = open(out).read() if os.path.exists(out) else ""
        return run.returncode, text + run.stderr

    def direct_weights(self):
        path = f"{self.t}/direct.st"
        if not os.path.exists(path):
            subprocess.run([self.a.mpiexec, "-n", "2", self.a.ddp_train, *self.train_args,
                            "--run-dir", f"{self.t}/direct", "--export-safetensors", path],
                           check=True, capture_output=True, env=mpi_env(), timeout=JOB_LIMIT_S)
        with open(path, "rb") as f:
            return f.read()

    def check_run(self, name, code, output):
        assert code == 0, f"{name}: sbatch --wait exit {code}:\n{output[-3000:]}"
        with open(f"{self.t}/{name}/metrics.jsonl") as f:
            epochs = [json.loads(line) for line in f if '"epoch"' in line]
        assert [e["epoch"] for e in epochs] == list(range(1, 11)), epochs
        with open(f"{self.t}/{name}.st", "rb") as f:
            assert f.read() == self.direct_weights(), f"{name}: weights differ from mpiexec -n 2"

    def cpu_script(self):
        code, out = self.sbatch("cpu", ["--nodes", "1", "--ntasks-per-node", "2"], [
            f"{self.a.root}/launch/slurm/cpu.sbatch", *self.train_args, "--run-dir",
            f"{self.t}/cpu", "--export-safetensors", f"{self.t}/cpu.st"])
        self.check_run("cpu", code, out)
        assert "2 rank(s)" in out, out[-2000:]

    def srun_pmix(self):
        plugins = subprocess.run(["srun", "--mpi=list"], capture_output=True, text=True,
                                 env=self.c.env)
        if "pmix" not in plugins.stdout + plugins.stderr:
            print("note: this Slurm has no pmix plugin: srun --mpi=pmix not tried")
            return
        command = " ".join([f"srun --mpi=pmix {self.a.ddp_train}", *self.train_args, "--run-dir",
                            f"{self.t}/pmix", "--export-safetensors", f"{self.t}/pmix.st"])
        code, out = self.sbatch("pmix", ["--ntasks", "2", "--wrap", command], [])
        self.check_run("pmix", code, out)

    def gpu_script(self):
        code, out = self.sbatch("gpu", ["--nodes", "1", "--ntasks-per-node", "1",
                                        "--gpus-per-node", "0", "--cpus-per-task", "1"], [
            f"{self.a.root}/launch/slurm/gpu.sbatch", *self.train_args, "--run-dir",
            f"{self.t}/gpu"])
        assert code != 0, f"the GPU script trained without a GPU:\n{out[-2000:]}"
        # No GPU here, or a build without the CUDA backend: either way the job says so.
        assert re.search(r"training\.device: cuda, but (no CUDA device is visible|this build has "
                         r"no CUDA backend)", out), out[-2000:]

    def nothing_left(self):
        self.c.stop()
        # Command lines that start with a job step's daemon or a rank (not this script's own).
        left = subprocess.run(["pgrep", "-af", f"^(slurmstepd|{self.a.ddp_train} )"],
                              capture_output=True, text=True).stdout
        assert not left.strip(), left


def main():
    args = required_args("--ddp-train", "--mpiexec", "--root")
    args.ddp_train = os.path.abspath(args.ddp_train)
    args.root = os.path.abspath(args.root)
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        print(f"SKIPPED: no Slurm here ({', '.join(missing)} missing; launch/setup.sh --test "
              "installs slurm-wlm and munge)")
        return 77
    if os.geteuid() != 0:
        print("SKIPPED: the one-node Slurm cluster runs its daemons as root; not root here")
        return 77
    with tempfile.TemporaryDirectory(prefix="ddp_slurm_") as tmp:
        cluster = Cluster(tmp)
        try:
            cluster.start()
        except SkipTest as e:
            cluster.stop()
            print(f"SKIPPED: Slurm cannot start here: {e}")
            return 77
        try:
            return run_scenarios("Slurm scenarios", Scenarios(args, cluster),
                                 ["cpu_script", "srun_pmix", "gpu_script", "nothing_left"])
        finally:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
