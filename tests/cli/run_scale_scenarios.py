#!/usr/bin/env python3
"""launch/ddp_scale.py (Note [scaling model]):
  bad_cluster_files   unknown keys, zero bandwidth, ranks not divisible by ranks_per_host, a
                      missing or non-YAML file: exit 2 with one line naming the file and the key;
                      a bad training config (ddp_bench's error line) and a global batch the
                      rank counts do not divide: exit 2 with one line
  presets_predict     every preset of configs/clusters predicts the seed example at its rank
                      counts, efficiency never above 1 across hosts, falling from 2 hosts to 512
  rested_link         a token-bucket link's gain from resting (Note [scaling model]), from
                      hand-made curves: the back-to-back curve less the rested one, in the share
                      of the bucket the computing phases refill; without a rested curve, the
                      burst_kb formula
  split_rows          one host's ranks that split the weight gradients (Note [split weight
                      gradients]) step as the profile's 2-rank run of the trainer's own choices
                      did, where that run took them and the settings allow them; ZeRO-1
                      otherwise; one rank steps as its own run did (the update inside backward);
                      the search for the best settings tries overlap and bf16 with zero: auto,
                      and between hosts MPI's own collectives (mpi_allreduce: library)
  shaped_prediction   (root) W2 on 2 hosts x 1 rank of launch/netns_cluster.sh, links shaped to
                      1 Gbit/s: sweep the link, predict, then measure with ddp_bench; the
                      prediction is within 30% of the measurement
shaped_prediction runs only when asked for (--only shaped_prediction; CTest registers it as a
test of its own) and exits 77 (skipped) where network namespaces cannot be made.
  run_scale_scenarios.py --build build --root . [--only shaped_prediction]"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from scenarios import mpi_env, run_scenarios

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(TESTS, "multihost"), os.path.join(os.path.dirname(TESTS), "launch")]
from run_multihost import namespaces_allowed  # noqa: E402
import scale_cluster  # noqa: E402
import scale_model  # noqa: E402

BAD_FILES = [
    ("unknown key", "inter_host: {bandwith_gbit: 25, latency_us: 10}",
     "inter_host.bandwith_gbit: unknown key"),
    ("unknown top-level key", "inter_host: {bandwidth_gbit: 25, latency_us: 10}\nnodes: 4",
     "nodes: unknown key"),
    ("zero bandwidth", "inter_host: {bandwidth_gbit: 0, latency_us: 10}",
     "inter_host.bandwidth_gbit: must be greater than 0"),
    ("bandwidth not a number", "inter_host: {bandwidth_gbit: fast, latency_us: 10}",
     "inter_host.bandwidth_gbit: must be a number"),
    ("no inter-host link", "", "inter_host: missing"),
    ("efficiency above 1", "inter_host: {bandwidth_gbit: 25, latency_us: 10, efficiency: 2}",
     "inter_host.efficiency: must be at most 1"),
    ("negative latency", "inter_host: {bandwidth_gbit: 25, latency_us: -1}",
     "inter_host.latency_us: must be 0 or greater"),
    ("negative burst", "inter_host: {bandwidth_gbit: 25, latency_us: 10, burst_kb: -5}",
     "inter_host.burst_kb: must be 0 or greater"),
]


class Scenarios:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.tool = os.path.join(args.root, "launch", "ddp_scale.py")

    def scale(self, *argv, timeout=600):
        command = list(argv[:1]) if argv[:1] == ("sweep",) else []
        rest = argv[len(command):]
        return subprocess.run([sys.executable, self.tool, *command, "--build", self.args.build,
                               *rest],
                              capture_output=True, text=True, timeout=timeout, env=mpi_env())

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def expect_refused(self, path, fragment):
        run = self.scale("--config", os.path.join(self.args.root, "configs", "seed_example.yaml"),
                         "--cluster", path)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2, f"{fragment}: exit {run.returncode}, stderr {run.stderr!r}"
        assert len(lines) == 1 and path in lines[0] and fragment in lines[0], \
            f"expected one line naming {path} and '{fragment}', got {run.stderr!r}"

    def bad_cluster_files(self):
        base = "ranks: [8, 64]\nranks_per_host: 8\n"
        for i, (what, body, fragment) in enumerate(BAD_FILES):
            self.expect_refused(self.write(f"bad{i}.yaml", base + body + "\n"), fragment)
        self.expect_refused(self.write("indivisible.yaml", "ranks: [8, 12]\nranks_per_host: 8\n"
                                       "inter_host: {bandwidth_gbit: 25, latency_us: 10}\n"),
                            "ranks: 12 is not divisible by ranks_per_host (8)")
        self.expect_refused(self.write("broken.yaml", "ranks: [8\n"), "not YAML")
        self.expect_refused(os.path.join(self.tmp, "absent.yaml"), "cannot read")
        # A bad training config: ddp_bench's own error line, naming the key, and its exit code.
        preset = os.path.join(self.args.root, "configs", "clusters", "cpu_25gbe.yaml")
        with open(os.path.join(self.args.root, "configs", "seed_example.yaml")) as f:
            config = self.write("bad_config.yaml", f.read().replace("units: 64", "units: 0"))
        run = self.scale("--config", config, "--cluster", preset, "--reprofile")
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2 and len(lines) == 1 and "units" in lines[0], run.stderr
        run = self.scale("--config", os.path.join(self.args.root, "configs", "seed_example.yaml"),
                         "--cluster", preset, "--global-batch", "100")
        assert run.returncode == 2 and "--global-batch 100: not divisible" in run.stderr, \
            run.stderr

    def presets_predict(self):
        presets = os.path.join(self.args.root, "configs", "clusters")
        files = sorted(os.path.join(presets, f) for f in os.listdir(presets))
        out = os.path.join(self.tmp, "presets.json")
        run = self.scale("--config", os.path.join(self.args.root, "configs", "seed_example.yaml"),
                         *[a for f in files for a in ("--cluster", f)], "--json", out)
        assert run.returncode == 0, run.stderr[-2000:]
        with open(out) as f:
            results = json.load(f)
        assert len(results) == len(files) >= 3, results
        for result in results:
            rows = {r["ranks"]: r for r in result["rows"]}
            one = rows[1]["samples_per_sec"]
            assert 512 in rows, f"{result['cluster']}: no prediction at 512 ranks"
            effs = [(r, rows[r]["samples_per_sec"] / (r * one)) for r in sorted(rows)
                    if rows[r]["hosts"] > 1]
            assert all(e <= 1.0 for _, e in effs), f"{result['cluster']}: {effs}"
            assert effs[-1][1] < effs[0][1], f"{result['cluster']}: efficiency not falling {effs}"
            assert all(r["step_ms"] > 0 for r in rows.values())

    def rested_link(self):
        mb = 2**20
        # One 2 MB bucket on 2 hosts x 1 rank; 6 ms a step without communication.
        profile = {"per_rank_batch": 128, "parameters": 2 * mb // 4, "tensors": [{"offset": 0}],
                   "ready": [{"offset": 0, "fraction": 1.0}], "codec_ms_per_byte": 0.0,
                   "compute": {n: {"data": 0.5, "forward": 1.5, "backward": 3.0, "optimizer": 1.0}
                               for n in ("1", "2")}}
        # Back to back 10 ms per MB; rested 20 ms before each call, 4 ms at 1 MB and 31 at 4 MB.
        busy = scale_cluster.Curve([{"bytes": mb, "ms": 10}, {"bytes": 4 * mb, "ms": 40}])
        rested = scale_cluster.Curve([{"bytes": mb, "ms": 4, "idle_ms": 20},
                                      {"bytes": 4 * mb, "ms": 31, "idle_ms": 20}])

        def exposed(burst_bytes, curves):
            cluster = {"ranks_per_host": 1, "collective": "mpi", "cores_per_host": 2,
                       "hosts_share_cores": False, "compute_speed": 1.0, "gpu_tflops": None,
                       "intra_host": None, "sweeps": {(2, 1): curves},
                       "inter_host": {"bandwidth": 125e6, "latency_ms": 0.05,
                                      "burst_bytes": burst_bytes}}
            return scale_model.simulate(profile, cluster, 2)["exposed_comm_ms"]

        both = {"mpi/fp32": busy, "mpi/fp32/rested": rested}
        # 20 ms back to back, 13 rested: a 1.25 MB bucket refills in 10 ms, 6 of them: 0.6 x 7.
        got = exposed(1.25e6, both)
        assert abs(got - (20 - 0.6 * 7)) < 1e-9, got
        # No burst named: the bucket takes the sweep's rest, 20 ms, to fill: 0.3 x 7.
        got = exposed(0.0, both)
        assert abs(got - (20 - 0.3 * 7)) < 1e-9, got
        # No rested curve: min(burst / bandwidth = 10 ms, the 6 ms without communication).
        got = exposed(1.25e6, {"mpi/fp32": busy})
        assert abs(got - (20 - 6)) < 1e-9, got

    def split_rows(self):
        mb = 2**20
        # 56 MB of parameters in 8 tensors; 40 ms of compute and 8 ms of optimizer a step.
        profile = {"per_rank_batch": 64, "parameters": 56 * mb // 4, "codec_ms_per_byte": 1e-7,
                   "tensors": [{"offset": k * 7 * mb // 4} for k in range(8)],
                   "ready": [{"offset": k * 7 * mb // 4, "fraction": (8 - k) / 8}
                             for k in range(8)],
                   "optimizer_state_bytes": 56 * mb,
                   "shm": {w: [{"bytes": mb, "ms": 0.5}, {"bytes": 64 * mb, "ms": 30}]
                           for w in ("fp32", "bf16")},
                   "compute": {n: {"data": 0.1, "forward": 12, "backward": 28, "optimizer": 8}
                               for n in ("1", "2")},
                   # The trainer's own choices: one rank updating inside backward; 2 ranks split.
                   "one_host": {"1": {"data": 0.1, "forward": 12, "backward": 30, "comm": 0,
                                      "optimizer": 0},
                                "2": {"data": 0.1, "forward": 12.5, "backward": 31, "comm": 0.5,
                                      "optimizer": 0}}}

        def cluster(per_host, bandwidth):
            return {"ranks_per_host": per_host, "collective": "mpi", "cores_per_host": per_host,
                    "hosts_share_cores": False, "compute_speed": 1.0, "gpu_tflops": None,
                    "intra_host": None, "sweeps": {},
                    "inter_host": {"bandwidth": bandwidth, "latency_ms": 0.05, "efficiency": 1}}

        host = cluster(4, 3e9)
        split = scale_model.simulate(dict(profile, split_rows=True), host, 4)
        assert (split["path"], split["zero"], split["exposed_comm_ms"]) == ("rows", "rows", 0.5), \
            split
        assert abs(split["step_ms"] - (0.1 + 12.5 + 31 + 0.5)) < 1e-9, split
        # Twice the batch: the per-sample phases twice as long.
        doubled = scale_model.simulate(dict(profile, split_rows=True), host, 4, batch=128)
        assert abs(doubled["step_ms"] - (0.2 + 25 + 62 + 0.5)) < 1e-9, doubled
        one = scale_model.simulate(dict(profile, split_rows=True), host, 1)
        assert (one["path"], one["step_ms"]) == ("none", 0.1 + 12 + 30), one
        assert (scale_model.memory_mb(profile, 4, split["zero"]) ==
                scale_model.memory_mb(profile, 1, False)), "split rows keep the whole state"
        # The trainer's refusals: ZeRO-1 asked for, overlap, bf16, flat MPI; and a model that the
        # profile saw stay on ZeRO-1 (say, parameters in cache).
        for settings in ({"zero": True}, {"overlap": True}, {"wire": "bf16"},
                         {"allreduce": "mpi"}):
            other = scale_model.simulate(dict(profile, split_rows=True), host, 4, settings)
            assert other["path"] != "rows" and other["exposed_comm_ms"] > 0, (settings, other)
        zero1 = scale_model.simulate(dict(profile, split_rows=False), host, 4)
        assert (zero1["path"], zero1["zero"]) == ("shm", True), zero1
        assert zero1["step_ms"] > split["step_ms"]
        # Across hosts nothing splits: 8 ranks on 2 hosts.
        across = scale_model.simulate(dict(profile, split_rows=True), host, 8)
        assert across["path"] != "rows" and across["hosts"] == 2, across
        # On slow links, overlapping the sums with backward wins; the search must try it with
        # zero: auto (it once skipped every combination of auto with overlap or bf16).
        _, best, alone = scale_model.recommend(profile, cluster(1, 2e8), 4)
        assert best["settings"]["overlap"] or best["settings"]["wire"] == "bf16", best["settings"]
        # Between hosts it weighs MPI's own collectives against the trainer's ring too.
        assert ("mpi_allreduce", "library") in [(k, v) for k, v, _ in alone], alone
        _, _, alone = scale_model.recommend(profile, host, 4)
        assert "mpi_allreduce" not in [k for k, _, _ in alone], alone

    def shaped_prediction(self):
        sweep = os.path.join(self.tmp, "sweep_2x1_1gbit.json")
        run = self.scale("sweep", "--hosts", "2", "--ranks-per-host", "1", "--rate", "1gbit",
                         "--paths", "mpi/fp32", "--max-mb", "4", "--out", sweep)
        assert run.returncode == 0, run.stderr[-2000:]
        # netns_cluster.sh's token bucket at 1 Gbit/s holds 10 ms of the rate: 1,250 KB.
        cluster = self.write("harness.yaml", "ranks: [2]\nranks_per_host: 1\n"
                             f"cores_per_host: {os.cpu_count()}\nhosts_share_cores: true\n"
                             "inter_host: {bandwidth_gbit: 1, latency_us: 50, burst_kb: 1250}\n"
                             f"sweeps: {sweep}\n")
        config = os.path.join(self.args.root, "configs", "w2_fmnist_mlp.yaml")
        out = os.path.join(self.tmp, "predicted.json")
        run = self.scale("--config", config, "--cluster", cluster, "--json", out)
        assert run.returncode == 0, run.stderr[-2000:]
        with open(out) as f:
            predicted = json.load(f)[0]["rows"][0]["samples_per_sec"]
        script = (f"mpirun $DDP_MPIRUN_ARGS -n 2 {self.args.build}/ddp_bench --config {config} "
                  "--warmup 5 --steps 40")
        run = subprocess.run([os.path.join(self.args.root, "launch", "netns_cluster.sh"),
                              "--hosts", "2", "--slots", "1", "--rate", "1gbit", "--", "sh",
                              "-c", script], capture_output=True, text=True, timeout=300,
                             env=mpi_env())
        assert run.returncode == 0, run.stderr[-2000:]
        measured = json.loads(run.stdout[run.stdout.index("{"):])["samples_per_sec"]
        error = predicted / measured - 1
        print(f"     predicted {predicted:,.0f} samples/s, measured {measured:,.0f}: "
              f"{error:+.1%}")
        assert abs(error) <= 0.30, f"prediction {error:+.1%} off (limit 30%)"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--only", nargs="*", help="run only these scenarios")
    args = p.parse_args()
    args.build, args.root = os.path.abspath(args.build), os.path.abspath(args.root)
    names = args.only or ["bad_cluster_files", "presets_predict", "rested_link", "split_rows"]
    if "shaped_prediction" in names and not namespaces_allowed():
        print("SKIPPED: cannot create and enter network namespaces here (needs root with "
              "CAP_NET_ADMIN, / as a mount point, iproute2 and unshare)")
        return 77
    with tempfile.TemporaryDirectory(prefix="ddp_scale_") as tmp:
        return run_scenarios("scaling-model scenarios", Scenarios(args, tmp), names)


if __name__ == "__main__":
    sys.exit(main())
