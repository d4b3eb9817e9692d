"""The tables of benchmarks/results/compare_pytorch.md from compare_pytorch.json's raw runs:
medians with min-max of alternated repeats, ratios of medians, the fastest competitor variant per
row, a roofline of ddp-trainer's phases, and every variant. Rerender without rerunning:
  python3 benchmarks/compare_report.py benchmarks/results/compare_pytorch.json"""

import json
import statistics
import sys

# Dense layer sizes (configs/w*.yaml) and optimizer bytes per parameter per step (reads + writes:
# Adam w, g, m, v in and w, m, v out; SGD with momentum w, g, m in and w, m out).
SIZES = {"w2": [784, 512, 256, 10], "w3": [1024, 2048, 2048, 2048, 2048, 10]}
OPT_BYTES = {"w2": 28, "w3": 20}
BATCH = {"w2": 128, "w3": 64}
UPDATE_AFTER = "ours update after backward"  # training.update_in_backward=false
OURS_THREADS = "ours 1x2 threads"  # one rank, training.threads_per_rank=2


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "not reached"
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def rate(x):
    return f"{x:,.0f}"


def median_of(runs, key):
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if len(values) == len(runs) else None


def fastest(row, key, lower_is_better=False, exclude=()):
    """(variant, median) of the best competitor variant: a variant that failed to reach a target
    in any run does not compete."""
    medians = {k: median_of(v, key) for k, v in row.items()
               if not k.startswith("ours") and k not in exclude}
    medians = {k: v for k, v in medians.items() if v is not None}
    pick = min if lower_is_better else max
    name = pick(medians, key=medians.get)
    return name, medians[name]


def phase_flops(workload):
    """The forward and backward products' FLOPs of one step of ddp-trainer's workload."""
    sizes, b = SIZES[workload], BATCH[workload]
    products = [i * o for i, o in zip(sizes, sizes[1:])]
    forward = 2 * b * sum(products)
    backward = 2 * b * sum(products) + 2 * b * sum(products[1:])  # no input gradient for layer 0
    return {"forward": forward, "backward": backward}


def gflops_of(flops, seconds, peak):
    g = flops / seconds / 1e9
    return f"{seconds * 1e3:.1f} ms = {g:.0f} GFLOP/s ({100 * g / peak:.0f}% of peak)"


def phase_roofline(run_list, workload, roofline):
    """Per phase of ddp-trainer's step (medians over runs): GFLOP/s and % of the FMA peak for the
    GEMM phases, GB/s and % of the triad bandwidth for the optimizer."""
    sizes = SIZES[workload]
    params = sum(i * o for i, o in zip(sizes, sizes[1:])) + sum(sizes[1:])
    phase = lambda name: statistics.median(r["phase_ms"][name] for r in run_list) / 1e3
    peak, bw = roofline["fma_gflops"]["median"], roofline["triad_gbs"]["median"]
    out = [f"{name} {gflops_of(flops, phase(name), peak)}"
           for name, flops in phase_flops(workload).items()]
    gbs = params * OPT_BYTES[workload] / phase("optimizer") / 1e9
    out.append(f"optimizer {phase('optimizer') * 1e3:.1f} ms = {gbs:.1f} GB/s "
               f"({100 * gbs / bw:.0f}% of triad)")
    return "; ".join(out)


def default_roofline(run_list, workload, roofline):
    """The default runs' products: backward's time less the updates inside it (ddp_bench's
    backward_update, recorded since this field existed). Updating after backward, the weight
    gradient is written to memory whole and read back, which the default never does, so the
    runs above charge the products traffic the trainer does not make. Where SGD's momentum step
    runs in the weight-gradient tiles (Note [update in the tiles]), it is not separable from the
    products, its backward_update near 0, and the products are charged with it."""
    if not all("backward_update" in r["phase_ms"] for r in run_list):
        return []
    peak, flops = roofline["fma_gflops"]["median"], phase_flops(workload)
    median = lambda f: statistics.median(f(r["phase_ms"]) for r in run_list) / 1e3
    forward = median(lambda p: p["forward"])
    products = median(lambda p: p["backward"] - p["backward_update"])
    both = median(lambda p: p["forward"] + p["backward"] - p["backward_update"])
    return [f"  - updating inside backward (the default): forward "
            f"{gflops_of(flops['forward'], forward, peak)}; backward's products (its time less the "
            f"update's {median(lambda p: p['backward_update']) * 1e3:.1f} ms) "
            f"{gflops_of(flops['backward'], products, peak)}; forward + backward products "
            f"{gflops_of(flops['forward'] + flops['backward'], both, peak)}"]


def command_arguments(r):
    """The run's arguments as given (older records kept only --only)."""
    if "arguments" in r:
        return "".join(" " + a for a in r["arguments"])
    return f" --only {','.join(r['only'])}" if r.get("only") else ""


def render(r):
    p, rows, reps = r["provenance"], r["rows"], r["reps"]
    roof = r["roofline"]
    md = [f"Measured {p['date']} at commit {p['commit']} ({p['tree']} tree) on {p['cpu']} "
          f"({p['cpu_id']}), {p['cores']} cores, kernel {p['kernel']}; load average "
          f"{p['load_average_start'][0]:.2f} at the start, {p['load_average_end'][0]:.2f} at the "
          f"end. Every row: {reps} rounds in which all variants ran once each, "
          f"{r.get('order', 'order rotating')}; "
          "median (min-max); ratios are of medians. Processes pinned one per core (ddp-trainer "
          "by mpirun --bind-to core, PyTorch by sched_setaffinity)."
          + (" QUICK RUN: a smoke test, not results." if r.get("quick") else ""),
          f"Roofline of this core (bench_roofline, median of 11 runs, min-max): FMA peak "
          f"{roof['fma_gflops']['median']:.0f} GFLOP/s ({roof['fma_gflops']['min']:.0f}-"
          f"{roof['fma_gflops']['max']:.0f}, {roof['isa']}), triad bandwidth over 59 MB arrays "
          f"{roof['triad_gbs']['median']:.1f} GB/s ({roof['triad_gbs']['min']:.1f}-"
          f"{roof['triad_gbs']['max']:.1f}).",
          "Command: `benchmarks/setup_frameworks.sh && benchmarks/compare_pytorch.py"
          + command_arguments(r) + "`.", "",
          "| workload | metric | fastest competitor variant | competitor | ddp-trainer | ratio | "
          "target |", "|---|---|---|---|---|---|---|"]

    # A run of `compare_pytorch.py --only ...` has some of the rows: the others are left out.
    def line(workload, metric, row, key, target, ours_key="ours", lower=False, fmt=rate,
             exclude=()):
        if row not in rows:
            return None, None
        name, best = fastest(rows[row], key, lower, exclude)
        mine = median_of(rows[row][ours_key], key)
        ratio = (f"{mine / best:.2f}x" if mine is not None else "not reached")
        md.append(f"| {workload} | {metric} | {name} | "
                  f"{spread([x[key] for x in rows[row][name]], fmt)} | "
                  f"{spread([x[key] for x in rows[row][ours_key]], fmt)} | {ratio} | {target} |")
        return mine, best

    line("W1", "samples/s, 1 rank x 1 thread", "w1", "samples_per_sec", ">= 20x")
    line("W1", "whole 10-epoch job, wall s (plain process)", "w1_job", "seconds", "<= 0.1 s",
         lower=True, fmt=lambda x: f"{x:.3f}", exclude=("ours under mpirun -n 1",))
    line("W1", "same, peak RSS MB", "w1_job", "peak_rss_mb", "<= 30 MB", lower=True,
         fmt=lambda x: f"{x:.0f}", exclude=("ours under mpirun -n 1",))
    line("W1", "same job under mpirun -n 1, wall s (mpirun's start-up included)", "w1_job",
         "seconds", "", ours_key="ours under mpirun -n 1", lower=True,
         fmt=lambda x: f"{x:.3f}", exclude=("ours under mpirun -n 1",))
    line("W2", "samples/s, 1 x 1, FTZ on our side, competitor's fastest either way", "w2",
         "samples_per_sec", ">= 1.5x", exclude=("ours no-FTZ",))
    if "w2" in rows:
        line("W2", "same, denormals not flushed on either side", "w2", "samples_per_sec", "",
             ours_key="ours no-FTZ",
             exclude=tuple(k for k in rows["w2"] if "no-FTZ" not in k) + ("ours no-FTZ",))
    line("W3", "samples/s, 1 x 1", "w3", "samples_per_sec", ">= 1.5x")
    line("W4", "samples/s, 1 x 1 (the Fashion-MNIST convnet, batch 64)", "w4", "samples_per_sec",
         ">= 1.2x")
    line("W5", "samples/s, 1 x 1 (the LSTM text classifier, batch 64)", "w5", "samples_per_sec",
         "")
    line("W6", "samples/s, 1 x 1 (the GRU text classifier, batch 64)", "w6", "samples_per_sec",
         "")
    line("W7", "samples/s, 1 x 1 (the transformer text classifier, batch 64)", "w7",
         "samples_per_sec", "")
    line("W8", "samples/s, 1 x 1 (the Fashion-MNIST ResNet, batch 64)", "w8", "samples_per_sec",
         "")
    two_core_targets = {("w3", "weak"): ">= 1.3x", ("w4", "weak"): ">= 1.2x"}
    for w in ("w2", "w3", "w4", "w5", "w6", "w7", "w8"):
        for kind in ("weak", "strong"):
            if f"{w}_2core_{kind}" not in rows:
                continue
            mine, _ = line(w.upper(), f"samples/s on 2 cores, {kind} scaling (ours 2 ranks; "
                           "PyTorch 1 x 2 threads or DDP 2 x 1)", f"{w}_2core_{kind}",
                           "samples_per_sec", two_core_targets.get((w, kind), ""))
            if OURS_THREADS in rows[f"{w}_2core_{kind}"]:
                line(w.upper(), f"samples/s on 2 cores, {kind} scaling (ours 1 rank x 2 threads)",
                     f"{w}_2core_{kind}", "samples_per_sec", two_core_targets.get((w, kind), ""),
                     ours_key=OURS_THREADS)
            if w not in rows:  # a run of the 2-core rows alone has no 1-rank rows to divide by
                continue
            one = median_of(rows[w]["ours"], "samples_per_sec")
            md.append(f"| {w.upper()} | 2-rank / 1-rank throughput, {kind} scaling | | | "
                      f"{mine / one:.2f}x (efficiency {mine / one / 2:.2f}) | | "
                      f"{'>= 1.7x' if w == 'w3' and kind == 'weak' else ''} |")
    for w, target in (("w2", "88%"), ("w4", "92%")):
        if f"{w}_tta" in rows:
            line(w.upper(), f"wall s to {target} test accuracy, 2 cores, "
                 f"{len(rows[f'{w}_tta']['ours'])} seeds, same initial weights", f"{w}_tta",
                 "seconds", "<= 0.5x", lower=True, fmt=lambda x: f"{x:.1f}")
            if OURS_THREADS in rows[f"{w}_tta"]:
                line(w.upper(), f"wall s to {target}, the same, ours 1 rank x 2 threads",
                     f"{w}_tta", "seconds", "<= 0.5x", ours_key=OURS_THREADS, lower=True,
                     fmt=lambda x: f"{x:.1f}")
    for w in ("w2", "w3", "w4"):  # compare_pytorch.py --only bf16
        if f"{w}_bf16" in rows:
            line(w.upper(), "samples/s, 1 x 1, bf16 products on both sides (ours "
                 "training.bf16_matmul; PyTorch matmul precision medium or autocast)",
                 f"{w}_bf16", "samples_per_sec", "")
            gain = (median_of(rows[f"{w}_bf16"]["ours"], "samples_per_sec") /
                    median_of(rows[f"{w}_bf16"]["ours fp32"], "samples_per_sec"))
            md.append(f"| {w.upper()} | ours with bf16 products / ours fp32, same rounds | | | "
                      f"{gain:.2f}x | | |")
    if "allreduce" in rows:
        ratios = {}
        for run in rows["allreduce"]["ours"]:
            for size in run["rows"]:
                if size["bytes"] >= 1 << 20:
                    ratios.setdefault(size["bytes"], []).append(
                        size["ours_busbw_gbs"] / size["raw_busbw_gbs"])
        worst = min(statistics.median(v) for v in ratios.values())
        md.append(f"| all-reduce | busbw ours / raw MPI_Allreduce, 2 ranks, >= 1 MB: the worst "
                  f"size's median | | | | {worst:.2f}x | >= 0.9x |")

    md += ["", "Where ddp-trainer's step goes (1 rank, medians of the runs above; phases from the "
           "runs that update after backward, since by default the update runs inside backward, "
           "Note [update in backward]):", ""]
    for w in ("w2", "w3"):
        if w in rows:
            after = rows[w].get(UPDATE_AFTER, rows[w]["ours"])
            md.append(f"- {w.upper()}: {phase_roofline(after, w, roof)}")
            if UPDATE_AFTER in rows[w]:
                ms = lambda runs: statistics.median(
                    r["phase_ms"]["backward"] + r["phase_ms"]["optimizer"] for r in runs)
                md.append(f"  - backward + update: {ms(after):.1f} ms after backward, "
                          f"{ms(rows[w]['ours']):.1f} ms inside it (the default)")
            md += default_roofline(rows[w]["ours"], w, roof)
    md += ["", "Every variant (median (min-max)):", "", "| row | variant | value |",
           "|---|---|---|"]
    keys = {"w1_job": ("seconds", "s", lambda x: f"{x:.3f}"),
            "w2_tta": ("seconds", "s", lambda x: f"{x:.1f}"),
            "w4_tta": ("seconds", "s", lambda x: f"{x:.1f}")}
    for row, variants in rows.items():
        if row == "allreduce":
            continue
        key, unit, fmt = keys.get(row, ("samples_per_sec", "samples/s", rate))
        for name, runs in variants.items():
            md.append(f"| {row} | {name} | {spread([x[key] for x in runs], fmt)} {unit} |")
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(render(json.load(f)))
