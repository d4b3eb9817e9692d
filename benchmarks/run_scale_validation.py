#!/usr/bin/env python3
"""Validates launch/ddp_scale.py's predictions (Note [scaling model]) against runs on the
namespace harness (launch/netns_cluster.sh): W2 and W3 on 2 hosts x 1 rank, 2 x 2 and 4 x 1, host
links shaped to 100 Mbit/s, 1 Gbit/s (with and without 2 ms of delay) or unshaped, 1 / 4 / 25 MB
buckets, overlap on and off, fp32 and bf16 wire.
  1. fit: profile W2 and W3 on 1 and 2 ranks of this host, and sweep the all-reduce paths of each
     layout and link (the only measurements the model sees);
  2. predict every case and write the predictions (benchmarks/results/scale_predictions.json)
     before any case runs;
  3. measure every case (median of --reps runs, cases alternated within each repeat; each run a
     fresh cluster running ddp_bench) and report prediction beside measurement.
Needs root (network namespaces). Writes benchmarks/results/scale_validation.{md,json,png}.
  benchmarks/run_scale_validation.py [--reps 3] [--only-fit]"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import provenance

ROOT = provenance.ROOT
sys.path.insert(0, os.path.join(ROOT, "launch"))
import ddp_scale  # noqa: E402
import scale_cluster  # noqa: E402
import scale_model  # noqa: E402

OUT = os.path.join(ROOT, "benchmarks", "results")
WORKLOADS = {"W2": ("configs/w2_fmnist_mlp.yaml", 30), "W3": ("configs/w3_wide_mlp.yaml", 4)}
LINKS = {"100mbit": ("100mbit", None), "1gbit": ("1gbit", None), "1gbit+2ms": ("1gbit", "2ms"),
         "unshaped": (None, None)}


def case(workload, hosts, per_host, link, **settings):
    return {"workload": workload, "hosts": hosts, "ranks_per_host": per_host, "link": link,
            "settings": settings}


def cases():
    out = [case("W2", h, l, link) for h, l in ((2, 1), (2, 2), (4, 1)) for link in LINKS]
    for bucket in (1, 4, 25):
        for overlap in (False, True):
            out.append(case("W3", 2, 1, "1gbit", bucket_mb=bucket, overlap=overlap))
    out += [case("W3", 2, 2, "1gbit"), case("W3", 2, 2, "1gbit", wire="bf16"),
            case("W3", 2, 2, "1gbit", allreduce="mpi"), case("W3", 4, 1, "1gbit"),
            case("W3", 2, 1, "1gbit+2ms"), case("W3", 2, 1, "100mbit", bucket_mb=25),
            case("W3", 2, 1, "unshaped"), case("W3", 2, 2, "unshaped"),
            case("W3", 4, 1, "unshaped")]
    return out


def label(c):
    s = ", ".join(f"{k}={v}" for k, v in c["settings"].items()) or "defaults"
    return f"{c['workload']} {c['hosts']}x{c['ranks_per_host']} {c['link']} ({s})"


def sweep_file(hosts, per_host, link):
    return os.path.join(OUT, "scale_sweeps", f"{hosts}x{per_host}_{link}.json")


def fit(all_cases, build):
    profiles = {}
    for name, (config, _) in WORKLOADS.items():
        print(f"profile {name} ...", flush=True)
        profiles[name] = ddp_scale.profile(build, os.path.join(ROOT, config), [])
    os.makedirs(os.path.join(OUT, "scale_sweeps"), exist_ok=True)
    for hosts, per_host, link in sorted({(c["hosts"], c["ranks_per_host"], c["link"])
                                         for c in all_cases}):
        rate, delay = LINKS[link]
        args = ["sweep", "--hosts", str(hosts), "--ranks-per-host", str(per_host), "--build",
                build, "--max-mb", "16" if link == "100mbit" else "64", "--out",
                sweep_file(hosts, per_host, link)]
        args += ["--rate", rate] if rate else []
        args += ["--delay", delay] if delay else []
        print(f"sweep {hosts}x{per_host} {link} ...", flush=True)
        ddp_scale.main(args)
    with open(os.path.join(OUT, "scale_profiles.json"), "w") as f:
        json.dump(profiles, f, indent=1)
    return profiles


def harness_cluster(c):
    """The harness as a cluster file would describe it: every host on this machine's cores."""
    path = sweep_file(c["hosts"], c["ranks_per_host"], c["link"])
    return {"file": "harness", "name": "harness", "ranks": [c["hosts"] * c["ranks_per_host"]],
            "ranks_per_host": c["ranks_per_host"], "collective": "mpi",
            "cores_per_host": os.cpu_count(), "hosts_share_cores": True, "compute_speed": 1.0,
            "gpu_tflops": None, "intra_host": None, "inter_host": None,
            "sweeps": scale_cluster.load_sweeps(path, path)}


def measure(c, build):
    config, steps = WORKLOADS[c["workload"]]
    if c["link"] == "100mbit" and c["workload"] == "W3":
        steps = 2
    names = {"bucket_mb": "bucket_mb", "overlap": "overlap", "wire": "wire_dtype",
             "allreduce": "allreduce"}
    sets = " ".join(f"--set training.{names[k]}={str(v).lower()}"
                    for k, v in c["settings"].items())
    ranks = c["hosts"] * c["ranks_per_host"]
    script = (f"mpirun $DDP_MPIRUN_ARGS -n {ranks} {build}/ddp_bench --config {ROOT}/{config} "
              f"--warmup 2 --steps {steps} {sets}")
    rate, delay = LINKS[c["link"]]
    cmd = [os.path.join(ROOT, "launch", "netns_cluster.sh"), "--hosts", str(c["hosts"]),
           "--slots", str(c["ranks_per_host"])]
    cmd += ["--rate", rate] if rate else []
    cmd += ["--delay", delay] if delay else []
    run = subprocess.run(cmd + ["--", "sh", "-c", script], capture_output=True, text=True,
                         timeout=900)
    if run.returncode != 0:
        sys.exit(f"run_scale_validation: {label(c)}: exit {run.returncode}\n"
                 f"{run.stderr[-2000:]}")
    return json.loads(run.stdout[run.stdout.index("{"):])


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 5))
    for workload, marker in (("W2", "o"), ("W3", "s")):
        pts = [(r["measured"], r["predicted"]) for r in rows if r["workload"] == workload]
        ax.scatter(*zip(*pts), marker=marker, label=workload)
    top = max(max(r["measured"], r["predicted"]) for r in rows) * 1.5
    low = min(min(r["measured"], r["predicted"]) for r in rows) / 1.5
    ax.plot([low, top], [low, top], "k-", lw=0.8, label="exact")
    for f in (0.9, 1.1):
        ax.plot([low, top], [low * f, top * f], "k:", lw=0.6)
    ax.set(xscale="log", yscale="log", xlabel="measured samples/s",
           ylabel="predicted samples/s", title="ddp_scale: predicted vs measured (harness)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--predict-only", action="store_true", help="reuse the fit; no measuring")
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("run_scale_validation: needs root (network namespaces)")
    record = provenance.record()
    all_cases = cases()
    profiles_path = os.path.join(OUT, "scale_profiles.json")
    if a.predict_only:
        with open(profiles_path) as f:
            profiles = json.load(f)
    else:
        profiles = fit(all_cases, a.build)
    predictions = []
    for c in all_cases:
        sim = scale_model.simulate(profiles[c["workload"]], harness_cluster(c),
                                   c["hosts"] * c["ranks_per_host"], c["settings"])
        predictions.append({**c, "predicted": sim["samples_per_sec"], "simulation": sim})
    with open(os.path.join(OUT, "scale_predictions.json"), "w") as f:
        json.dump({"provenance": record, "predictions": predictions}, f, indent=1)
    print(f"{len(predictions)} predictions written before measuring", flush=True)
    if a.predict_only:
        return 0
    runs = [[] for _ in all_cases]
    for rep in range(a.reps):
        for i, c in enumerate(all_cases):
            r = measure(c, a.build)
            expected = {"mpi": "through mpi", "hierarchical": "shared memory within hosts"}
            if expected[predictions[i]["simulation"]["path"]] not in r["gradient_sync"]:
                sys.exit(f"run_scale_validation: {label(c)} took another path than predicted: "
                         f"{r['gradient_sync']}")
            runs[i].append(r)
            print(f"rep {rep + 1} {label(c)}: {r['samples_per_sec']:,.0f} samples/s "
                  f"(predicted {predictions[i]['predicted']:,.0f})", flush=True)
    rows = []
    for pred, measured in zip(predictions, runs):
        speed = statistics.median(r["samples_per_sec"] for r in measured)
        rows.append({**pred, "measured": speed, "error": pred["predicted"] / speed - 1,
                     "runs": measured})
    errors = sorted(abs(r["error"]) for r in rows)
    lines = [
        "Command: `benchmarks/run_scale_validation.py --reps "
        f"{a.reps}`. Measured {record['date']} at commit {record['commit']} ({record['tree']} "
        f"tree) on {record['cpu']} ({record['cpu_id']}), {record['cores']} cores; every harness "
        "host shares them. Fit: W2 and W3 profiled on 1 and 2 ranks of this host, and all-reduce "
        "sweeps of each layout and link (`ddp_scale.py sweep`); predictions written to "
        "`scale_predictions.json` before the first case ran. Measured: median samples/s of "
        f"{a.reps} runs (each a fresh cluster running ddp_bench; cases alternated).", "",
        f"Median absolute error {statistics.median(errors):.1%}, maximum {errors[-1]:.1%} over "
        f"{len(rows)} cases.", "",
        "| case | path | predicted samples/s | measured (min-max) | error |", "|---|---|---|---|---|"]
    for r in rows:
        speeds = sorted(x["samples_per_sec"] for x in r["runs"])
        lines.append(f"| {label(r)} | {r['simulation']['path']} | {r['predicted']:,.0f} | "
                     f"{r['measured']:,.0f} ({speeds[0]:,.0f}-{speeds[-1]:,.0f}) | "
                     f"{r['error']:+.1%} |")
    with open(os.path.join(OUT, "scale_validation.json"), "w") as f:
        json.dump({"provenance": record, "rows": rows}, f, indent=1)
    with open(os.path.join(OUT, "scale_validation.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(rows, os.path.join(OUT, "scale_validation.png"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"took {time.monotonic() - start:.0f} s")
    sys.exit(code)
