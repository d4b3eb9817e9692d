#!/usr/bin/env python3
"""Multi-host runs on one machine: launch/netns_cluster.sh makes each "host" a network namespace
with its own hostname and scratch, and Open MPI crosses hosts over TCP on a bridge.
  equivalence_2x2, equivalence_4x1  the training-equivalence tests (N ranks = 1 rank within
                    1e-5, bit-identical replicas, overlap, accumulation, bf16, ZeRO-1, resume) on
                    the MPI and hierarchical paths, as 2 hosts x 2 ranks and 4 hosts x 1 rank
  equivalence_4x2   the same on 4 hosts x 2 ranks (8 ranks: a hierarchical ring over 4 hosts,
                    each host's 2 ranks carrying half of it)
  uneven_hosts      4 ranks as 3 on h0 and 1 on h1: the MPI path's equivalence tests pass,
                    hierarchical is refused naming the layout, and ddp_train's auto takes MPI
                    saying why
  auto_path         ddp_train picks MPI for ranks on several hosts, and says why
  resume_layouts    a run stopped at step 40 on 2 x 2, its checkpoint written on rank 0's host
                    only, resumed on 4 x 1 and on 1 x 4 (shared memory): the final weights match
                    an uninterrupted 2 x 2 run within 1e-5
  shaped_link       every host link shaped to 50 Mbit/s (tbf), and with 1% packet loss and 5 ms
                    delay (ddp_link_relay): the same weights, bit for bit; the delayed link's
                    round trip is >= 10 ms and the lossy hosts retransmitted
  host_killed       every process of host h1 SIGKILLed mid-training: the job ends
                    naming h1, and launch/supervise.sh resumes it from the last checkpoint to the
                    weights of an uninterrupted run, bit for bit; no process of the job is left
  link_down         host h1's link down mid-training (until the job has failed): the watchdog
                    (5 s) ends the ranks, ddp_run.sh ends mpirun 10 s later naming h1, and the
                    supervisor resumes to the same weights; no process of the job is left
  nothing_left      no namespace and no process of the harness survives
Exits 77 (skipped) where network namespaces cannot be created."""

import argparse
import math
import re
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from run_checkpoint_scenarios import read_safetensors  # noqa: E402
from scenarios import run_scenarios  # noqa: E402

LIMIT_S = 240
RTT_PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "round_trip.py")
# The multi-rank tests that do not need every rank on one host.
MPI_PATH_TESTS = ("Paths/DdpTraining.*/mpi:Paths/DdpTraining.*/hierarchical:Paths/DdpModels.*/mpi:"
                  "Paths/DdpModels.*/hierarchical:Optimizers/Resume.*mpi:"
                  "Optimizers/Resume.*hierarchical:MpiCommunicator.*:RunAgreed.*:"
                  "Paths/GradSyncPaths.*/mpi:Buckets.*")


class Scenarios:
    def __init__(self, args, tmp):
        self.a = args
        self.tmp = tmp
        self.cluster = os.path.join(args.root, "launch", "netns_cluster.sh")
        self.seed = os.path.join(args.root, "configs", "seed_example.yaml")

    def on_cluster(self, hosts, slots, script, shaping=()):
        """Runs the shell script on host h0 of a fresh cluster; returns its stdout and stderr."""
        cmd = [self.cluster, "--hosts", str(hosts), "--slots", str(slots), *shaping, "--", "sh",
               "-c", f"set -e\n{script}"]
        env = dict(os.environ, MPIRUN=self.a.mpiexec, DDP_TRAIN=self.a.ddp_train,
                   DDP_LINK_RELAY=self.a.link_relay)
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=LIMIT_S,
                                stdin=subprocess.DEVNULL, cwd=self.tmp)
        assert result.returncode == 0, (f"{hosts} x {slots}: exit {result.returncode}\n"
                                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout + result.stderr

    def train(self, ranks, *args):
        quoted = " ".join(f'"{a}"' for a in args)  # $DDP_SCRATCH expands on the head node
        return (f'"$MPIRUN" $DDP_MPIRUN_ARGS -n {ranks} "$DDP_TRAIN" --config {self.seed} '
                f"--set training.epochs=4 {quoted}")

    def equivalence(self, hosts, slots, ranks=None, tests=MPI_PATH_TESTS):
        """The multi-rank tests `tests` as `ranks` (all slots by default) on hosts x slots; Open
        MPI fills each host's slots before the next host's."""
        command = f"{self.a.dist_tests} --gtest_filter='{tests}'"
        ranks = ranks or hosts * slots
        out = self.on_cluster(hosts, slots, f'"$MPIRUN" $DDP_MPIRUN_ARGS -n {ranks} {command}')
        assert "[  PASSED  ]" in out and "FAILED" not in out, out[-3000:]

    def equivalence_2x2(self):
        self.equivalence(2, 2)

    def equivalence_4x1(self):
        self.equivalence(4, 1)

    def equivalence_4x2(self):
        self.equivalence(4, 2)

    def uneven_hosts(self):
        mpi_only = ":".join(t for t in MPI_PATH_TESTS.split(":") if "hierarchical" not in t)
        self.equivalence(2, 3, ranks=4, tests=mpi_only)
        out = self.on_cluster(2, 3, self.train(4, "--run-dir", "$DDP_SCRATCH/auto") +
                              "\n" + self.train(4, "--run-dir", "$DDP_SCRATCH/forced", "--set",
                                                "training.allreduce=hierarchical") + " || true")
        assert "hosts: h0 (ranks 0-2), h1 (rank 3)" in out, out[-2000:]
        assert ("fp32 through mpi (hosts run 1 to 3 ranks each; hierarchical needs the same "
                "number on every host)") in out, out[-2000:]
        assert "Epoch 4/4" in out, out[-2000:]
        assert ("training.allreduce: hierarchical, but hosts run 1 to 3 ranks each; hierarchical "
                "needs the same number on every host") in out, out[-2000:]

    def auto_path(self):
        out = self.on_cluster(2, 2, self.train(4, "--run-dir", "$DDP_SCRATCH/run"))
        assert "fp32 through shared memory within hosts, mpi across (2 hosts x 2 ranks)" in out, \
            out[-2000:]
        assert "Epoch 4/4" in out, out[-2000:]

    def resume_layouts(self):
        t = self.tmp
        self.on_cluster(2, 2, self.train(4, "--run-dir", "$DDP_SCRATCH/a",
                                         "--export-safetensors", f"{t}/straight.st"))
        # The checkpoint exists only in h0's private scratch; it leaves with the run directory.
        self.on_cluster(2, 2, self.train(4, "--run-dir", "$DDP_SCRATCH/b", "--stop-after", "40") +
                        f'\ncp -r "$DDP_SCRATCH/b" {t}/stopped')
        _, straight = read_safetensors(f"{t}/straight.st")
        for hosts, slots in ((4, 1), (1, 4)):
            out = self.on_cluster(hosts, slots, f'cp -r {t}/stopped "$DDP_SCRATCH/b"\n' +
                                  self.train(4, "--run-dir", "$DDP_SCRATCH/b", "--resume",
                                             "--export-safetensors", f"{t}/{hosts}x{slots}.st"))
            assert "at step 40" in out, out[-2000:]
            _, resumed = read_safetensors(f"{t}/{hosts}x{slots}.st")
            worst = max(abs(a - b) for name in straight
                        for a, b in zip(straight[name][1], resumed[name][1]))
            assert worst <= 1e-5, f"{hosts} x {slots}: max abs diff {worst} from the straight run"
            assert math.isfinite(worst)

    def shaped_link(self):
        t = self.tmp
        run = self.train(4, "--run-dir", "$DDP_SCRATCH/a", "--export-safetensors", f"{t}/%s.st")
        self.on_cluster(2, 2, run % "plain")
        self.on_cluster(2, 2, run % "slow", shaping=("--rate", "50mbit"))
        # h0's round trip to h1 (TCP connects: SYN out through h0's relay, SYN-ACK back through
        # h1's), and the relays' own count of frames dropped.
        out = self.on_cluster(2, 2, run % "lossy" + f"\n{sys.executable} {RTT_PROBE}",
                              shaping=("--delay", "5ms", "--loss", "1%"))
        round_trip = [float(line.split()[1]) for line in out.splitlines()
                      if line.startswith("round_trip_ms ")]
        assert round_trip and 10 <= round_trip[0] <= 20, f"5 ms each way: {round_trip}\n{out}"
        relays = re.findall(r"^ddp_link_relay .*: (\d+) frames, (\d+) dropped.* (\d+) overflowed",
                            out, re.M)
        frames, dropped, overflowed = (sum(int(r[i]) for r in relays) for i in (0, 1, 2))
        print(f"lossy link: round trip {round_trip[0]} ms, {dropped} of {frames} frames dropped")
        assert len(relays) == 2 and frames >= 1000, out[-2000:]
        assert 0.002 <= dropped / frames <= 0.03, f"{dropped} of {frames} dropped, not ~1%"
        assert overflowed == 0, f"the relays lost {overflowed} frames they were not asked to drop"
        for shape in ("slow", "lossy"):
            with open(f"{t}/plain.st", "rb") as a, open(f"{t}/{shape}.st", "rb") as b:
                assert a.read() == b.read(), f"weights differ on the {shape} link"

    # A long seed-example run that checkpoints every 4000 steps, with a short watchdog.
    LONG_RUN = ["--set", "training.epochs=1000", "--set", "checkpoint.every_epochs=0",
                "--set", "checkpoint.every_steps=4000", "--set", "training.collective_timeout_s=5"]
    # Waits up to 20 s for the job's processes to be gone from every host (the harness's own
    # shells aside), then lists those left. A daemon cut off by a link that came back learns
    # within seconds that mpirun is gone.
    LEFTOVERS = """
job_processes() {
  for ns in $(ip netns list | awk '{print $1}' | grep "^$DDP_CLUSTER-h"); do ip netns pids "$ns"; done |
    xargs -r ps -o comm= -p | grep -E '^(orted|ddp_train|mpirun)$' || true
}
for i in $(seq 100); do [ -z "$(job_processes)" ] && break; sleep 0.2; done
job_processes | sed 's/^/left behind: /'
"""

    def straight_long_run(self):
        """The uninterrupted run's weights, made once."""
        path = f"{self.tmp}/long.st"
        if not os.path.exists(path):
            run = (f"{self.a.root}/launch/ddp_run.sh -n 4 --config {self.seed} " +
                   " ".join(self.LONG_RUN))
            self.on_cluster(2, 2, f'{run} --run-dir "$DDP_SCRATCH/a" --export-safetensors {path}')
        with open(path, "rb") as f:
            return f.read()

    def supervised(self, name, fault):
        """Runs the long run under launch/supervise.sh with `fault` (a shell script) beside it;
        returns the head node's output and the supervisor's stderr. The weights must be the
        uninterrupted run's, and no process of the job may be left on any host."""
        t = self.tmp
        out = self.on_cluster(2, 2, f"""
export DDP_TEARDOWN_S=10
({fault}) &
{self.a.root}/launch/supervise.sh --max-restarts 1 --backoff 2 -- -n 4 --config {self.seed} \
  {" ".join(self.LONG_RUN)} --run-dir "$DDP_SCRATCH/b" --export-safetensors {t}/{name}.st \
  2>{t}/{name}.err
wait
{self.LEFTOVERS}""")
        err = open(f"{t}/{name}.err").read()
        assert "supervise: job failed with exit code" in err, err[-3000:]
        assert "resume: continuing from" in out, out[-2000:]
        assert "left behind" not in out, out[-2000:]
        with open(f"{t}/{name}.st", "rb") as f:
            assert f.read() == self.straight_long_run(), \
                "weights after the restart differ from the straight run"
        return out, err

    WAIT_FOR_CHECKPOINT = """
for i in $(seq 600); do [ -e "$DDP_SCRATCH/b/checkpoints/latest" ] && break; sleep 0.1; done"""

    def host_killed(self):
        # Once the first checkpoint exists, every process of h1 dies.
        _, err = self.supervised("killed", self.WAIT_FOR_CHECKPOINT + """
ip netns pids "$DDP_CLUSTER-h1" | xargs -r kill -9""")
        assert "node h1" in err, "the lost host is not named:\n" + err[-3000:]

    def link_down(self):
        # Once the first checkpoint exists, h1's link goes down until the job has failed: the
        # watchdog (5 s) ends the ranks, ddp_run.sh ends mpirun 10 s later, naming h1.
        t = self.tmp
        out, err = self.supervised("cut", self.WAIT_FOR_CHECKPOINT + f"""
ip -n "$DDP_CLUSTER-h1" link set eth0 down
down=$(date +%s)
until grep -q "supervise: job failed" {t}/cut.err; do sleep 0.2; done
echo "failed $(( $(date +%s) - down )) s after the link went down"
ip -n "$DDP_CLUSTER-h1" link set eth0 up""")
        assert "the job's hosts: h0 (ranks 0-1), h1 (ranks 2-3)" in err, err[-3000:]
        assert "mpirun has not ended 10 s after the job failed: no word from h1 (ranks 2-3)" in err, \
            err[-3000:]
        took = int(out.split("failed ")[1].split(" s after")[0])
        assert took <= 5 + 10 + 10, f"the job took {took} s to fail after the link went down"

    def nothing_left(self):
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert "ddpc" not in namespaces, namespaces
        procs = subprocess.run(["pgrep", "-af", "/tmp/ddpc"], capture_output=True, text=True).stdout
        assert not procs.strip(), procs


def namespaces_allowed():
    """A namespace can be made and entered, with a mount namespace of its own (a chroot whose / is
    not a mount point can make one but not enter it)."""
    if not shutil.which("ip") or not shutil.which("unshare"):
        return False
    # In a chroot / is no mount point: ip netns could create a namespace (and leave its /run/netns
    # mount behind, blocking the chroot's removal) but not enter one. Touch nothing there.
    with open("/proc/self/mountinfo") as f:
        if not any(line.split()[4] == "/" for line in f):
            return False
    probe = f"ddp-probe-{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return False
    try:
        return subprocess.run(["ip", "netns", "exec", probe, "unshare", "--uts", "--mount",
                               "--propagation", "private", "true"],
                              capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ddp-train", required=True)
    p.add_argument("--dist-tests", required=True)
    p.add_argument("--mpiexec", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--link-relay", required=True)
    p.add_argument("--only", nargs="*", help="run only these scenarios")
    args = p.parse_args()
    for name in ("ddp_train", "dist_tests", "root", "link_relay"):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    if not namespaces_allowed():
        print("SKIPPED: cannot create and enter network namespaces here (needs root with "
              "CAP_NET_ADMIN, / as a mount point (not a chroot), iproute2's ip and util-linux's "
              "unshare)")
        return 77
    with tempfile.TemporaryDirectory(prefix="ddp_multihost_") as tmp:
        names = ["equivalence_2x2", "equivalence_4x1", "equivalence_4x2", "uneven_hosts",
                 "auto_path", "resume_layouts",
                 "shaped_link", "host_killed", "link_down", "nothing_left"]
        return run_scenarios("multi-host scenarios", Scenarios(args, tmp), args.only or names)


if __name__ == "__main__":
    sys.exit(main())
