#!/usr/bin/env python3
"""ddp_scale: will this model scale on my cluster? Measures the model on this machine, then
predicts step time, samples/s and scaling efficiency at the cluster's rank counts, and the settings
that train it fastest there (Note [scaling model] in launch/scale_model.py).

  launch/ddp_scale.py --config configs/w3_wide_mlp.yaml --cluster configs/clusters/cpu_25gbe.yaml
  launch/ddp_scale.py sweep --hosts 2 --ranks-per-host 2 --rate 1gbit --out sweep.json

The first form profiles the config (1 and 2 ranks here, and the shared-memory all-reduce; about
a minute, cached next to the build's executables) and prints the prediction. `sweep` measures the
trainer's all-reduce paths between hosts, as a latency + per-byte curve a cluster file can name
(`sweeps:`): on this machine's namespace harness (launch/netns_cluster.sh, root), or on a real
cluster with --mpirun 'mpirun --hostfile H -n 4'."""

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, os.path.join(ROOT, "benchmarks")]

import provenance  # noqa: E402
import scale_cluster  # noqa: E402
import scale_model  # noqa: E402

PROFILE_VERSION = 6  # what a profile holds; cached ones of other versions are measured again
# The 1-rank run stands for one rank per host of a larger job, where the optimizer cannot update
# during backward (Note [update in backward]).
PROFILE_OVERRIDES = ["training.overlap=false", "training.zero=0", "training.allreduce=auto",
                     "training.wire_dtype=fp32", "training.update_in_backward=false"]
# The trainer's own choices on one host, with the model's default reduction settings: one rank
# updating inside backward, and on 2 ranks whatever zero: auto takes (Note [split weight
# gradients] where it applies).
ONE_HOST_OVERRIDES = ["training.overlap=false", "training.zero=auto", "training.allreduce=auto",
                      "training.wire_dtype=fp32"]
PHASES = ("data", "forward", "backward", "comm", "optimizer")
# (path, wire, overlap): the trainer's reductions between hosts. With overlap the MPI path runs
# non-blocking collectives, whose algorithms differ from the blocking ones'; shared memory and
# hierarchical block either way.
SWEEP_PATHS = [("mpi", "fp32", False), ("mpi", "bf16", False), ("mpi", "fp32", True),
               ("mpi", "bf16", True), ("hierarchical", "fp32", False),
               ("hierarchical", "bf16", False)]


def sweep_key(allreduce, wire, overlap):
    return f"{allreduce}/{wire}" + ("/overlap" if overlap else "")


def fail(message, code=1):
    print(f"ddp_scale: error: {message}", file=sys.stderr)
    sys.exit(code)


def mpi_env():
    """As launch/ddp_run.sh runs Open MPI on one host: as root if need be, over ob1."""
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_pml="ob1")


def run_json(cmd, what, timeout=900):
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, env=mpi_env(), timeout=timeout)
    except FileNotFoundError as e:
        fail(f"{what}: {e.filename}: not found (Open MPI's mpirun on PATH?)")
    if run.returncode != 0:
        # The tool's own error line (ddp_bench names the file and key), not mpirun's epilogue.
        lines = [x for x in run.stderr.splitlines() if "error" in x] or run.stderr.splitlines()
        fail(f"{what} failed (exit {run.returncode}): "
             f"{lines[0].strip() if lines else 'no message'}", run.returncode)
    # The JSON may come before or after the tool's table (its stdout is flushed at exit).
    return json.JSONDecoder().raw_decode(run.stdout[run.stdout.index("{"):])[0]


def bench(build, ranks, config, overrides, warmup, steps):
    sets = [a for o in overrides for a in ("--set", o)]
    return run_json(["mpirun", "-n", str(ranks), os.path.join(build, "ddp_bench"), "--config",
                     config, *sets, "--warmup", str(warmup), "--steps", str(steps),
                     "--profile-backward"],
                    f"ddp_bench -n {ranks} --config {config}")


def median_run(runs):
    return sorted(runs, key=lambda r: r["step_ms"])[len(runs) // 2]


def profile(build, config, overrides, repeats=3, warmup=5, steps=20):
    """The model's pieces on this machine (Note [scaling model]); 1- and 2-rank runs alternate."""
    runs, one_host = {"1": [], "2": []}, {"1": [], "2": []}
    for _ in range(repeats):
        for ranks in runs:
            runs[ranks].append(bench(build, int(ranks), config, overrides + PROFILE_OVERRIDES,
                                     warmup, steps))
            one_host[ranks].append(bench(build, int(ranks), config,
                                         overrides + ONE_HOST_OVERRIDES, warmup, steps))
    one = median_run(runs["1"])
    compute = {k: {phase: median_run(v)["phase_ms"][phase]
                   for phase in ("data", "forward", "backward", "optimizer")}
               for k, v in runs.items()}
    backward = statistics.median(r["phase_ms"]["backward"] for r in runs["1"])
    shm = {}
    for wire in ("fp32", "bf16"):
        shm[wire] = run_json(["mpirun", "-n", "2", os.path.join(build, "bench_allreduce"),
                              "--allreduce", "shm", "--wire", wire, "--one-bucket", "--no-raw",
                              "--min-bytes", "4096", "--max-bytes", str(64 << 20),
                              "--seconds-per-size", "0.2", "--json", "/dev/stdout"],
                             "bench_allreduce (shared memory)")["rows"]
    # The bf16 codec's encoding and decoding per fp32 byte, two ranks at once as on a host.
    codec_rows = run_json(["mpirun", "-n", "2", os.path.join(build, "bench_allreduce"), "--codec",
                           "--min-bytes", str(64 << 20), "--max-bytes", str(64 << 20),
                           "--seconds-per-size", "0.5", "--json", "/dev/stdout"],
                          "bench_allreduce --codec")["rows"]
    codec = codec_rows[-1]["ms"] / codec_rows[-1]["bytes"]
    return {"one_host": {k: {phase: median_run(v)["phase_ms"][phase] for phase in PHASES}
                         for k, v in one_host.items()},
            "split_rows": "split by rows" in one_host["2"][0]["gradient_sync"],
            "config": config, "overrides": overrides, "per_rank_batch": one["per_rank_batch"],
            "parameters": one["parameters"], "tensors": one["tensors"],
            "forward_flops_per_sample": one["forward_flops_per_sample"],
            "ready": [{"offset": c["offset"], "fraction": min(1.0, c["ms"] / backward)}
                      for c in one["ready_ms"]],
            "compute": compute, "optimizer_state_bytes":
                one["optimizer_state_mb_per_rank"] * 2**20,
            "peak_rss_mb": {k: max(median_run(v)["peak_rss_mb"]) for k, v in runs.items()},
            "shm": shm, "codec_ms_per_byte": codec, "runs": runs, "one_host_runs": one_host,
            "provenance": provenance.record()}


def cached_profile(args):
    key = hashlib.sha256(json.dumps([PROFILE_VERSION, os.path.abspath(args.config), args.set,
                                     open(args.config, "rb").read().hex()]).encode())
    path = os.path.join(args.build, f"ddp_scale_profile_{key.hexdigest()[:12]}.json")
    if os.path.exists(path) and not args.reprofile:
        print(f"profile: {path} (cached; --reprofile measures again)")
        with open(path) as f:
            return json.load(f)
    print(f"profiling {args.config} on this machine (1 and 2 ranks as ranks of a larger job and "
          "as jobs of their own, 3 runs each) ...", flush=True)
    result = profile(args.build, args.config, args.set)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"profile: {path}")
    return result


def show_profile(p):
    c1, c2 = p["compute"]["1"], p["compute"]["2"]
    print(f"model: {p['parameters']:,} parameters ({p['parameters'] * 4 / 2**20:.1f} MB of "
          f"gradients), {p['per_rank_batch']} samples per rank")
    print(f"measured here, ms per step: forward {c1['forward']:.1f}, backward "
          f"{c1['backward']:.1f}, optimizer {c1['optimizer']:.1f} (1 rank); "
          f"{c2['forward']:.1f}, {c2['backward']:.1f}, {c2['optimizer']:.1f} (2 ranks); "
          f"bf16 codec {p['codec_ms_per_byte'] * 2**20:.3f} ms per MB")
    if "one_host" in p:
        step = {k: sum(v.values()) for k, v in p["one_host"].items()}
        print(f"jobs of one host, as the trainer runs them: 1 rank {step['1']:.1f} ms a step "
              f"(the update inside backward), 2 ranks {step['2']:.1f} ms (" +
              ("weight gradients split by rows" if p.get("split_rows") else "gradients summed") +
              ")")


def per_rank_batch(args, profile, ranks):
    """--global-batch G: G / ranks per rank (strong scaling); else --per-rank-batch or the
    config's (weak scaling)."""
    if args.global_batch:
        if args.global_batch % ranks:
            fail(f"--global-batch {args.global_batch}: not divisible by {ranks} ranks (a rank "
                 "count of a cluster file)", 2)
        return args.global_batch // ranks
    return args.per_rank_batch or (profile or {}).get("per_rank_batch")


def show_prediction(p, cluster, args):
    print(f"\ncluster {cluster['name']} ({cluster['file']}):")
    if cluster["gpu_tflops"]:
        print(f"  compute assumed: {cluster['gpu_tflops']:g} TFLOP/s per GPU on the model's "
              f"{3 * p.get('forward_flops_per_sample', 2 * p['parameters']) / 1e6:.1f} MFLOP per "
              "sample (forward + backward), 5 us per kernel launch, optimizer at 4.8 TB/s; no GPU "
              "run measured")
    print(f"  {'ranks':>6} {'hosts':>6} {'batch':>6} {'path':>13} {'step ms':>9} {'comm ms':>9} "
          f"{'samples/s':>11} {'efficiency':>10} {'state MB':>9} | best settings (gain)")
    for ranks in cluster["ranks"]:
        batch = per_rank_batch(args, p, ranks)
        # Weak scaling: one rank at the same per-rank batch; strong: one rank with all of it.
        one = scale_model.simulate(p, cluster, 1, {}, args.global_batch or batch)
        base, best, _ = scale_model.recommend(p, cluster, ranks, batch)
        eff = base["samples_per_sec"] / (ranks * one["samples_per_sec"])
        changed = {k: v for k, v in best["settings"].items() if v != scale_model.DEFAULTS[k]}
        advice = (", ".join(f"{k}={v}" for k, v in changed.items()) +
                  f" ({base['step_ms'] / best['step_ms']:.2f}x)") if changed else "defaults"
        print(f"  {ranks:>6} {base['hosts']:>6} {batch:>6} {base['path']:>13} "
              f"{base['step_ms']:>9.1f} {base['exposed_comm_ms']:>9.1f} "
              f"{base['samples_per_sec']:>11,.0f} {eff:>10.2f} "
              f"{scale_model.memory_mb(p, ranks, base['zero']):>9.1f} | {advice}")
    ranks = cluster["ranks"][-1]
    _, _, alone = scale_model.recommend(p, cluster, ranks, per_rank_batch(args, p, ranks))
    print(f"  each setting alone at {ranks} ranks, speed-up over the defaults: " +
          ", ".join(f"{k}={v} {gain:.2f}x" for k, v, gain in alone))
    print(f"  ZeRO-1 at {ranks} ranks: {scale_model.memory_mb(p, ranks, True):.1f} MB of model "
          f"state per rank instead of {scale_model.memory_mb(p, ranks, False):.1f}; measured peak "
          f"memory here {p['peak_rss_mb']['1']:.0f} MB (1 rank)")
    print("  efficiency: samples/s over ranks x one rank's samples/s " +
          ("with the whole global batch (strong scaling)" if args.global_batch
           else "at the same per-rank batch (weak scaling)"))


def plot(prof, clusters, results, path, global_batch=None):
    try:
        import matplotlib
    except ImportError:
        fail("--plot needs matplotlib (apt-get install python3-matplotlib, and run this with "
             "/usr/bin/python3)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for cluster, result in zip(clusters, results):
        points = []
        for r in result["rows"]:  # the reference as show_prediction's
            one = scale_model.simulate(prof, cluster, 1, {}, global_batch or r["batch"])
            points.append((r["ranks"], r["samples_per_sec"] / (r["ranks"] *
                                                               one["samples_per_sec"])))
        ax.plot(*zip(*points), marker="o", label=cluster["name"])
    ax.set(xscale="log", xlabel="ranks", ylabel="predicted scaling efficiency", ylim=(0, 1.15),
           title=f"ddp_scale: {os.path.basename(prof['config'])}, defaults")
    ax.set_xscale("log", base=2)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def tbf_bucket(rate):
    """(bytes per second, burst bytes) of a host link of netns_cluster.sh's --rate, e.g. 1gbit:
    its token bucket holds what the rate sends in 10 ms, at least 256 KB (tbf_burst there)."""
    number, unit = int(rate.rstrip("kmgbitKMGBIT")), rate.lstrip("0123456789").lower()
    bytes_per_s = number * {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[unit] / 8
    return bytes_per_s, max(bytes_per_s / 100, 262144)


def sweep(args):
    """All-reduce curves of the trainer's paths on one layout (Note [scaling model])."""
    ranks = args.hosts * args.ranks_per_host
    curves = {}
    paths = [(a, w, o) for a, w, o in SWEEP_PATHS if (a == "mpi" or args.ranks_per_host > 1) and
             (not args.paths or sweep_key(a, w, o) in args.paths.split(","))]
    # A token-bucket link (--rate) rests while the ranks compute and starts each step's first
    # collective with a full bucket, which back-to-back calls never see: so each blocking path is
    # swept a second time with the link rested twice its refill time before every call.
    rest_ms = args.rest_ms or 0.0
    if args.rest_ms is None and args.rate and not args.mpirun:
        bytes_per_s, burst = tbf_bucket(args.rate)
        rest_ms = 2e3 * burst / bytes_per_s
    runs = [(a, w, o, 0.0) for a, w, o in paths]
    runs += [(a, w, False, rest_ms) for a, w, o in paths if not o and rest_ms > 0]
    for allreduce, wire, overlap, rest in runs:
        key = sweep_key(allreduce, wire, overlap) + ("/rested" if rest else "")
        cmd = (f"{args.mpirun or 'mpirun $DDP_MPIRUN_ARGS'} -n {ranks} "
               f"{shlex.quote(os.path.join(args.build, 'bench_allreduce'))} --allreduce "
               f"{allreduce} --wire {wire} {'--overlap ' if overlap else ''}--one-bucket --no-raw "
               f"--min-bytes 16384 --step-factor 2 --max-bytes {args.max_mb << 20} "
               f"--seconds-per-size {args.seconds} --idle-ms {rest} --json /dev/stdout")
        if not args.mpirun:
            shaping = [x for flag, v in (("--rate", args.rate), ("--delay", args.delay)) if v
                       for x in (flag, v)]
            cmd = [os.path.join(HERE, "netns_cluster.sh"), "--hosts", str(args.hosts),
                   "--slots", str(args.ranks_per_host), *shaping, "--", "sh", "-c", cmd]
        else:
            cmd = ["sh", "-c", cmd]
        print(f"sweep {key} ...", flush=True)
        curves[key] = run_json(cmd, f"bench_allreduce {key}")["rows"]
    out = {"layout": {"hosts": args.hosts, "ranks_per_host": args.ranks_per_host},
           "link": {"rate": args.rate or "unshaped", "delay": args.delay or "0"},
           "curves": curves}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    for key, rows in curves.items():
        latency, bandwidth = scale_model.Curve(rows).fit()
        print(f"{key}: {latency:.3f} ms + bytes / {bandwidth / 1e6:.1f} MB/s")
    print(f"wrote {args.out}")


def main(argv):
    if argv[:1] == ["sweep"]:
        p = argparse.ArgumentParser(prog="ddp_scale.py sweep", description=sweep.__doc__)
        p.add_argument("--hosts", type=int, default=2)
        p.add_argument("--ranks-per-host", type=int, default=1)
        p.add_argument("--rate", help="shape each host's link (netns_cluster.sh --rate)")
        p.add_argument("--delay", help="add latency (netns_cluster.sh --delay)")
        p.add_argument("--mpirun", help="a real cluster's mpirun line instead of the harness")
        p.add_argument("--max-mb", type=int, default=64)
        p.add_argument("--paths", help="only these, e.g. mpi/fp32,mpi/fp32/overlap")
        p.add_argument("--rest-ms", type=float, help="also sweep the blocking paths with the "
                       "link idle this long before each call (a token-bucket link's refill; "
                       "default with --rate: twice the harness's refill time, else none)")
        # Long enough for TCP's steady state: on a 100 Mbit/s link with 2 ms of delay the first
        # 5 calls of 1 MB took 88 ms each (line rate), calls after 2 s 136 ms (the queue's losses).
        p.add_argument("--seconds", type=float, default=2.0, help="per size and path (TCP's "
                       "first second on a shaped link runs faster than its steady state)")
        p.add_argument("--build", default=os.path.join(ROOT, "build"))
        p.add_argument("--out", required=True)
        args = p.parse_args(argv[1:])
        # netns_cluster.sh's delay comes from the relay of the build being measured.
        os.environ.setdefault("DDP_LINK_RELAY", os.path.join(args.build, "ddp_link_relay"))
        return sweep(args)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the training config to profile")
    p.add_argument("--set", action="append", default=[], help="config override, as ddp_train's")
    p.add_argument("--cluster", action="append", required=True, help="cluster file (repeatable)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--per-rank-batch", type=int, help="predict at this per-rank batch")
    group.add_argument("--global-batch", type=int,
                       help="predict at this global batch, split over the ranks")
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--reprofile", action="store_true")
    p.add_argument("--json", help="write the predictions here")
    p.add_argument("--plot", help="write efficiency against ranks per cluster here (PNG; needs "
                   "matplotlib: apt-get install python3-matplotlib)")
    a = p.parse_args(argv)
    clusters = []
    for path in a.cluster:
        try:
            clusters.append(scale_cluster.load_cluster(path))
        except scale_cluster.ClusterError as e:
            fail(str(e), 2)
    if not os.path.exists(a.config):
        fail(f"{a.config}: no such config file", 2)
    for cluster in clusters:  # before anything is measured or printed
        for ranks in cluster["ranks"]:
            per_rank_batch(a, None, ranks)
    for tool in ("ddp_bench", "bench_allreduce"):
        if not os.access(os.path.join(a.build, tool), os.X_OK):
            fail(f"{os.path.join(a.build, tool)}: not built (cmake --build {a.build}), or give "
                 "--build DIR")
    prof = cached_profile(a)
    show_profile(prof)
    results = []
    for cluster in clusters:
        show_prediction(prof, cluster, a)
        results.append({"cluster": cluster["file"], "rows": [
            scale_model.simulate(prof, cluster, r, {}, per_rank_batch(a, prof, r))
            for r in cluster["ranks"]]})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    if a.plot:
        plot(prof, clusters, results, a.plot, a.global_batch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
