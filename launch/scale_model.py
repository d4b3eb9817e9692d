"""Note [scaling model]: predicts one training step of ddp-trainer on a described cluster from
pieces measured on this machine (launch/ddp_scale.py measures them), bucket by bucket, as the
trainer runs it:

  step = data + forward + backward + exposed communication + optimizer

- Compute: the profile's forward, backward and optimizer times per rank, measured with 1 rank and
  with 2 ranks on this machine (the second carries the slowdown of ranks sharing a socket), with
  the optimizer after backward, as a rank of a job across hosts runs it. A job of one rank is the
  profile's run of the trainer's own choices at 1 rank (`one_host`: the update inside backward,
  Note [update in backward]), so efficiencies are against what one rank really does.
  A host running more ranks than it has cores time-shares them (x ranks / cores); `compute_speed`
  scales a cluster's cores against this machine's; a GPU cluster's compute is the profile's
  forward FLOPs (ddp_bench: 2 per weight and output position) x 3 at the stated `gpu_tflops`.
- Buckets: cut from the model's tensors exactly as src/comm/buckets.cpp cuts them; bucket k can
  start when backward has made its first tensor's gradient final (the profile's ready times).
- Communication of one bucket of b bytes (fp32; bf16 halves what crosses a link and adds the
  codec's measured cost of encoding and decoding what a rank sends: the bucket on the flat path,
  its 1 / ranks_per_host part on the hierarchical one, whose sums within the host round in
  registers and are in the shared-memory curve):
  * a measured curve where the cluster names one (`sweeps:`, from `ddp_scale.py sweep` on that
    layout): piecewise linear in b between the measured sizes, i.e. a fitted latency + per-byte
    term per interval, which follows the MPI library's switches between algorithms (with overlap,
    the curve of the non-blocking collectives, whose algorithms differ);
  * otherwise the ring over the ranks involved: 2 (p - 1) latencies + 2 (p - 1) / p * b over the
    link's bandwidth x efficiency. Flat MPI: one ring over all ranks, bottlenecked by the host
    links, or by the memory its hops within a host go through (at least the shared-memory sum's
    cost, concurrently with the link's). Hierarchical: a shared-memory reduce-scatter and
    all-gather within the host plus one ring over the hosts per local rank, carrying
    b / ranks_per_host each over the shared link.
    NCCL: ring over all GPUs at min(NVLink, network) bus bandwidth, or a tree where its latency
    term wins (NCCL chooses likewise).
- Between hosts the all-reduce goes around the trainer's ring (training.mpi_allreduce: auto;
  src/comm/ring_all_reduce.cpp) in one call per bucket, segments pipelined, when the bucket holds
  at least a 256 KB segment per rank of the ring; overlapped, the ring is non-blocking and each
  poll moves it on; ZeRO-1's reduce-scatter and all-gather are its two halves, over the whole
  buffer. Otherwise (mpi_allreduce: library, smaller buckets) MPI's calls go in pieces of 512 KB per rank of their ring (1 MB at 2
  ranks), one after the other (src/comm/mpi_piece_queue.h; the hierarchical path's slices, whose
  rings span the hosts, and bf16's halved bytes alike), so a bucket's last, partial piece costs a
  latency of its own: a bucket is its whole pieces (on the curve, or ring formula, at their total
  size) plus its remainder at the remainder's size. On a 2 ms link W2's 2.04 MB bucket is two
  pieces and 46 KB, and the 46 KB alone took 4.3 ms.
- Overlap: shared-memory and hierarchical reductions block inside ready(), so overlap only moves
  them; MPI's non-blocking collectives advance only inside MPI calls, which the trainer makes at
  each ready() (Note [CPU all-reduce]): each poll lets a started collective run one of its
  2 (p - 1) ring steps (in the background, on the link), and the rest runs back to back in
  finish(). NCCL overlaps fully (its own stream).
- Token-bucket links (`burst_kb`: cloud VMs' shaped bandwidth, tc's tbf): a bucket that refills
  at the link's rate while the link is idle lets up to burst_kb through at once, so the host link
  keeps sending through the step's computing phases, up to a burst's worth. A back to back sweep
  never idles the link and so measures the rate alone; `ddp_scale.py sweep --rate` sweeps each
  blocking path a second time with the link rested before every call (`<path>/rested`), and the
  step's first bucket gains the difference between the two curves, in the share of the bucket
  that the phases which do not communicate refilled (their ms over burst / rate). Measured so
  because latency spends tokens too: on 4 hosts at 1 Gbit/s W2's 2 MB all-reduce took 26.3 ms
  back to back and 17.9 rested, but with 2 ms of delay 22.0 rested (the ring's first steps wait
  out the delay, while the full bucket stops refilling). Without a rested curve: the
  communication shrinks by min(burst / bandwidth, those phases), and only where the sweep's
  fitted bandwidth reaches 90% of the bucket's rate (`rate`, when the cluster names it), since
  below it latency limits the collective (2 ms of delay: 72 MB/s on a 125 MB/s link).
- ZeRO-1: a reduce-scatter plus an all-gather move the bytes of one all-reduce; the optimizer
  runs on 1 / ranks of the parameters and keeps 1 / ranks of its state.
- Split weight gradients (Note [split weight gradients]): on one CPU host, where the profile's
  2-rank run of the trainer's own choices took them, nothing is summed: a step is that run's
  phases (backward holding the weight gradients and their updates, communication the barriers),
  as a host's ranks beyond 2 are taken to run like its second; the optimizer state stays whole on
  each rank.
Everything here is plain arithmetic on the profile and the cluster; nothing is fitted to the runs
it is validated against (benchmarks/run_scale_validation.py)."""

import itertools
import math

from scale_cluster import Curve

GPU_LAUNCH_MS = 0.005
GPU_MEMORY_BYTES_PER_S = 4.8e12  # H200 HBM3e
# A link is rate-bound when its sweep reaches this share of the token bucket's rate.
RATE_BOUND = 0.9
DEFAULTS = {"bucket_mb": 4, "overlap": False, "wire": "fp32", "zero": "auto", "allreduce": "auto",
            "mpi_allreduce": "auto"}
RING_SEGMENT_BYTES = 256 << 10  # src/comm/ring_all_reduce.h's kRingSegmentBytes


def piece_bytes(ranks):
    """src/comm/mpi_piece_queue.h's all_reduce_piece_bytes: what one MPI all-reduce among `ranks`
    carries at most."""
    return min(max(ranks, 2) * (512 << 10), 1 << 30)


def splits_rows(profile, cluster, hosts, ranks, settings):
    """Whether the trainer splits the weight gradients by rows (src/comm/grad_sync.cpp's
    split_rows): the ranks on one CPU host, zero: auto, shared memory, fp32 without overlap, and a
    model for which the profile's 2-rank probe saw `zero: auto` take them (which covers the rest:
    every parameter a dense layer's, the update as gradients come, parameters over 8 MB)."""
    return (ranks > 1 and hosts == 1 and cluster["collective"] != "nccl" and "one_host" in profile
            and profile.get("split_rows", False) and settings["zero"] == "auto"
            and settings["allreduce"] in ("auto", "shm") and not settings["overlap"]
            and settings["wire"] == "fp32")


def zero_on(settings, path):
    """training.zero: auto shards the optimizer where shared memory sums fp32 after backward
    (Note [sharded step])."""
    if settings["zero"] != "auto":
        return bool(settings["zero"])
    return path == "shm" and not settings["overlap"] and settings["wire"] == "fp32"


def cut_buckets(tensor_offsets, total, bucket_bytes):
    """src/comm/buckets.cpp's cut_buckets: [(offset, count)] in reverse layer order."""
    buckets, end = [], total
    for start in reversed(tensor_offsets):
        if (end - start) * 4 >= bucket_bytes:
            buckets.append((start, end - start))
            end = start
    if end > 0:
        buckets.append((0, end))
    return buckets


def layout(cluster, ranks):
    """(hosts, ranks per host) for `ranks` ranks: hosts are filled one after the other."""
    per_host = min(ranks, cluster["ranks_per_host"])
    return ranks // per_host, per_host


def path_for(cluster, hosts, per_host, settings):
    """The reduction the trainer takes (src/comm/grad_sync.cpp's choose_path)."""
    if cluster["collective"] == "nccl":
        return "nccl"
    asked = settings["allreduce"]
    if asked != "auto":
        return asked
    if hosts == 1:
        return "shm"
    return "hierarchical" if per_host > 1 and settings["zero"] is not True else "mpi"


def compute_ms(profile, cluster, ranks, batch):
    """Per-rank data, forward, backward and optimizer ms of one step (Note [scaling model])."""
    hosts, per_host = layout(cluster, ranks)
    scale = batch / profile["per_rank_batch"]
    if cluster["gpu_tflops"]:
        # The forward pass's FLOPs (ddp_bench counts 2 per weight and output position), twice
        # that backward, plus a kernel launch (~5 us) per tensor and pass; the optimizer reads
        # and writes parameters, gradients and two moments once at an H200's 4.8 TB/s.
        # Profiles from before ddp_bench counted FLOPs: a Dense model's 2 per parameter.
        flops = profile.get("forward_flops_per_sample", 2 * profile["parameters"]) * batch
        flop_ms = flops / (cluster["gpu_tflops"] * 1e12) * 1e3
        launches_ms = len(profile["tensors"]) * GPU_LAUNCH_MS
        return {"data": 0.0, "forward": flop_ms + launches_ms,
                "backward": 2 * flop_ms + 2 * launches_ms,
                "optimizer": 16 * profile["parameters"] / GPU_MEMORY_BYTES_PER_S * 1e3}
    sharing = per_host * (hosts if cluster["hosts_share_cores"] else 1)
    return scaled_ms(profile["compute"]["1" if sharing == 1 else "2"], cluster, sharing, scale)


def scaled_ms(measured, cluster, sharing, scale):
    """Measured phases (ms) on a cluster whose hosts run `sharing` ranks, at `scale` times the
    profiled batch: the per-sample phases scale with the batch, every phase with the cores."""
    slowdown = max(1.0, sharing / cluster["cores_per_host"]) / cluster["compute_speed"]
    return {phase: ms * (scale if phase in ("data", "forward", "backward") else 1) * slowdown
            for phase, ms in measured.items()}


def one_host_step(profile, cluster, ranks, batch, settings):
    """The step of a one-host job measured as it is (the profile's `one_host` runs), or None: a
    job of one rank, or the ranks of one host splitting the weight gradients."""
    if cluster["gpu_tflops"] or "one_host" not in profile:
        return None
    hosts, per_host = layout(cluster, ranks)
    if ranks > 1 and not splits_rows(profile, cluster, hosts, ranks, settings):
        return None
    t = scaled_ms(profile["one_host"]["1" if ranks == 1 else "2"], cluster, per_host,
                  batch / profile["per_rank_batch"])
    step = sum(t.values())
    return {"ranks": ranks, "hosts": hosts, "ranks_per_host": per_host,
            "path": "none" if ranks == 1 else "rows", "zero": False if ranks == 1 else "rows",
            "buckets": 0, "compute_ms": t["data"] + t["forward"] + t["backward"],
            "exposed_comm_ms": t["comm"], "optimizer_ms": t["optimizer"], "step_ms": step,
            "samples_per_sec": ranks * batch / step * 1e3, "settings": settings, "batch": batch}


def _ring_ms(link, participants, size):
    """One ring all-reduce of `size` bytes among `participants` over `link`."""
    if participants < 2:
        return 0.0
    p = participants
    return 2 * (p - 1) * link["latency_ms"] + 2 * (p - 1) / p * size / link["bandwidth"] * 1e3


def _shm_ms(profile, cluster, per_host, size, wire):
    """The shared-memory reduction among a host's ranks, from the 2-rank curve measured here: the
    host's memory traffic grows with its ranks (each reads every copy of its part)."""
    if per_host < 2:
        return 0.0
    return Curve(profile["shm"][wire]).ms(size) * per_host / 2 / cluster["compute_speed"]


def comm_ms(profile, cluster, ranks, path, wire, size, overlap=False, ring=False, rested=False):
    """Milliseconds to all-reduce one bucket of `size` fp32 bytes (Note [scaling model]); `ring`:
    the trainer's ring may serve it (between hosts, mpi_allreduce not library, no ZeRO-1);
    `rested`: from the layout's curve swept after the link rested (see _rested_credit_ms)."""
    hosts, per_host = layout(cluster, ranks)
    if path == "shm":
        return _shm_ms(profile, cluster, ranks, size, wire)
    if path == "nccl":
        return _collective_ms(profile, cluster, ranks, path, wire, size, overlap)
    hierarchical = path == "hierarchical"
    # What one rank's ring call carries, in wire bytes, and among how many ranks.
    ring_bytes = size / (2 if wire == "bf16" else 1) / (per_host if hierarchical else 1)
    if ring and ring_bytes >= (hosts if hierarchical else ranks) * RING_SEGMENT_BYTES:
        return _collective_ms(profile, cluster, ranks, path, wire, size, overlap, 1, rested)
    # MPI's pieces, in the bucket's fp32 bytes: a piece of the wire's bytes per local rank, sized
    # by the ranks of its ring (the hosts, on the hierarchical path).
    piece = (piece_bytes(hosts if hierarchical else ranks) *
             (2 if wire == "bf16" else 1) * (per_host if hierarchical else 1))
    whole, rest = divmod(size, piece)
    return ((_collective_ms(profile, cluster, ranks, path, wire, whole * piece, overlap, whole,
                            rested) if whole else 0.0) +
            (_collective_ms(profile, cluster, ranks, path, wire, rest, overlap, 1, rested)
             if rest else 0.0))


def _collective_ms(profile, cluster, ranks, path, wire, size, overlap, pieces=1, rested=False):
    """`size` fp32 bytes all-reduced as `pieces` equal collectives back to back; `rested`: after
    the link rested (a curve swept so; the caller checks there is one)."""
    hosts, per_host = layout(cluster, ranks)
    measured = (cluster["sweeps"] or {}).get((hosts, per_host), {})
    keys = ([f"{path}/{wire}/rested"] if rested else
            [f"{path}/{wire}/overlap"] if overlap else []) + [f"{path}/{wire}"]
    for key in keys:
        if key in measured:
            return measured[key].ms(size)
    wire_bytes = size / 2 if wire == "bf16" else size
    # bf16 rounding: measured here on the CPU; on a GPU, a read and a write at memory speed.
    codec_per_byte = (2 / GPU_MEMORY_BYTES_PER_S * 1e3 if cluster["gpu_tflops"]
                      else profile["codec_ms_per_byte"])
    codec = codec_per_byte * size if wire == "bf16" else 0.0
    inter, intra = cluster["inter_host"], cluster["intra_host"]
    if path == "nccl":
        links = [link for link, used in ((intra, per_host > 1), (inter, hosts > 1)) if used]
        slowest = {"bandwidth": min(link["bandwidth"] for link in links),
                   "latency_ms": max(link["latency_ms"] for link in links)}
        ring = _ring_ms(slowest, ranks, wire_bytes)
        # A tree pays latency per level instead of per rank, and about the ring's bytes.
        levels = math.log2(hosts) * (inter or slowest)["latency_ms"] + \
            math.log2(per_host) * (intra or slowest)["latency_ms"]
        tree = 2 * levels + wire_bytes / slowest["bandwidth"] * 1e3
        return min(ring, tree) + codec
    # Every piece pays the ring's latencies.
    if path == "hierarchical":
        return (_shm_ms(profile, cluster, per_host, size, wire) +
                pieces * _ring_ms(inter, hosts, wire_bytes / pieces) + codec / per_host)
    # One flat ring; the host links bottleneck. Its hops between a host's ranks move at least the
    # bytes of the host's shared-memory sum, through the same memory, while the link carries the
    # hops between hosts: the slower of the two.
    return max(pieces * _ring_ms(inter, ranks, wire_bytes / pieces),
               _shm_ms(profile, cluster, per_host, size, wire)) + codec


def bucket_ready_ms(profile, buckets, backward_ms):
    """When backward has made each bucket's first tensor final: the first ready(offset) call at or
    below the bucket's offset, its measured share of backward scaled to this backward."""
    calls = profile["ready"]
    return [next(c["fraction"] for c in calls if c["offset"] <= offset) * backward_ms
            for offset, _ in buckets]


def _polled_ms(ready, polls, comm, steps, backward_ms):
    """MPI non-blocking collectives (Note [scaling model]): each poll lets every started
    collective run its next ring step on the link; finish() runs the rest back to back."""
    done_steps = [0] * len(comm)
    busy_until = [0.0] * len(comm)
    link_free = 0.0

    def advance(k, now):
        nonlocal link_free
        start = max(now, busy_until[k], link_free)
        busy_until[k] = link_free = start + comm[k] / steps
        done_steps[k] += 1

    for t in polls:
        for k in range(len(comm)):
            if ready[k] <= t and done_steps[k] < steps and busy_until[k] <= t:
                advance(k, t)
    for k in range(len(comm)):
        while done_steps[k] < steps:
            advance(k, backward_ms)
    return max([backward_ms, *busy_until]) - backward_ms


def _rested_credit_ms(profile, cluster, ranks, path, wire, size, ring, idle):
    """What a step's first bucket of `size` fp32 bytes gains from the link's rest while the ranks
    computed for `idle` ms: the layout's back-to-back curve less its rested one, in the share of
    the token bucket the rest refilled (the link's burst over its rate, else the sweep's rest).
    None without a rested curve for the path (the burst_kb formula applies then)."""
    measured = (cluster["sweeps"] or {}).get(layout(cluster, ranks), {})
    curve = measured.get(f"{path}/{wire}/rested")
    if curve is None:
        return None
    link = cluster["inter_host"] or {}
    fill_ms = (link["burst_bytes"] / link.get("rate", link["bandwidth"]) * 1e3
               if link.get("burst_bytes") else curve.rest_ms)
    gain = (comm_ms(profile, cluster, ranks, path, wire, size, False, ring) -
            comm_ms(profile, cluster, ranks, path, wire, size, False, ring, rested=True))
    return (min(1.0, idle / fill_ms) if fill_ms > 0 else 1.0) * max(0.0, gain)


def simulate(profile, cluster, ranks, settings=None, batch=None):
    """One step at `ranks` ranks: a dict of ms per phase, samples/s, path and buckets."""
    s = dict(DEFAULTS, **(settings or {}))
    batch = batch or profile["per_rank_batch"]
    measured = one_host_step(profile, cluster, ranks, batch, s)
    if measured:
        return measured
    hosts, per_host = layout(cluster, ranks)
    t = compute_ms(profile, cluster, ranks, batch)
    path = path_for(cluster, hosts, per_host, s) if ranks > 1 else "none"
    zero = zero_on(s, path)
    # ZeRO-1's reduce-scatter and all-gather each go over the whole buffer (src/comm/zero1_sync.h).
    buckets = ([(0, profile["parameters"])] if zero else
               cut_buckets([x["offset"] for x in profile["tensors"]], profile["parameters"],
                           s["bucket_mb"] * 2**20))
    overlapped = s["overlap"] and path in ("mpi", "nccl") and not zero and ranks > 1
    ring = hosts > 1 and s["mpi_allreduce"] != "library"
    comm = [comm_ms(profile, cluster, ranks, path, s["wire"], count * 4, overlapped, ring)
            if ranks > 1 else 0.0 for _, count in buckets]
    if overlapped:
        ready = bucket_ready_ms(profile, buckets, t["backward"])
        if path == "nccl":
            end = 0.0
            for r, c in zip(ready, comm):
                end = max(end, r) + c
            exposed = max(0.0, end - t["backward"])
        else:
            polls = [c["fraction"] * t["backward"] for c in profile["ready"]]
            exposed = _polled_ms(ready, polls, comm, 2 * (ranks - 1), t["backward"])
    else:
        exposed = sum(comm)  # blocking, or started at ready() and blocking there
    optimizer = t["optimizer"] / ranks if zero else t["optimizer"]
    link = cluster["inter_host"]
    idle = t["data"] + t["forward"] + optimizer + (0.0 if overlapped else t["backward"])
    rested = (_rested_credit_ms(profile, cluster, ranks, path, s["wire"], buckets[0][1] * 4,
                                ring, idle) if ranks > 1 and not zero else None)
    if rested is not None:
        exposed = max(0.0, exposed - rested)
    elif (hosts > 1 and link and link.get("burst_bytes") and
            link["bandwidth"] >= RATE_BOUND * link.get("rate", link["bandwidth"])):
        exposed = max(0.0, exposed - min(link["burst_bytes"] / link["bandwidth"] * 1e3, idle))
    step = t["data"] + t["forward"] + t["backward"] + exposed + optimizer
    return {"ranks": ranks, "hosts": hosts, "ranks_per_host": per_host, "path": path, "zero": zero,
            "buckets": len(buckets), "compute_ms": t["data"] + t["forward"] + t["backward"],
            "exposed_comm_ms": exposed, "optimizer_ms": optimizer, "step_ms": step,
            "samples_per_sec": ranks * batch / step * 1e3, "settings": s, "batch": batch}


def memory_mb(profile, ranks, zero):
    """Model state per rank: parameters, gradients, optimizer state (sharded under ZeRO-1, not
    where the weight gradients are split by rows: zero == "rows")."""
    state = profile["optimizer_state_bytes"] / (ranks if zero is True else 1)
    return (8 * profile["parameters"] + state) / 2**20


def efficiency(profile, cluster, ranks, settings=None, batch=None):
    """samples/s at `ranks` over `ranks` x samples/s of one rank of the same cluster."""
    one = simulate(profile, cluster, 1, settings, batch)
    many = simulate(profile, cluster, ranks, settings, batch)
    return many["samples_per_sec"] / (ranks * one["samples_per_sec"])


def recommend(profile, cluster, ranks, batch=None):
    """The fastest of the settings the trainer offers at `ranks`, and what each change from the
    defaults gains alone: [(setting, value, predicted speed-up over the defaults)]."""
    hosts, per_host = layout(cluster, ranks)
    paths = ["auto"] if cluster["collective"] == "nccl" or hosts == 1 else (
        ["mpi", "hierarchical"] if per_host > 1 else ["mpi"])
    choices = {"bucket_mb": [1, 4, 25], "overlap": [False, True], "wire": ["fp32", "bf16"],
               "zero": ["auto", True], "allreduce": paths,
               # The trainer's ring or MPI's own collectives between hosts.
               "mpi_allreduce": ["auto", "library"] if hosts > 1 else ["auto"]}
    base = simulate(profile, cluster, ranks, {}, batch)
    alone = []
    for key, values in choices.items():
        for value in values:
            if value != DEFAULTS[key] and not (key == "allreduce" and value == base["path"]):
                trial = simulate(profile, cluster, ranks, {key: value}, batch)
                alone.append((key, value, base["step_ms"] / trial["step_ms"]))
    best = base
    for values in itertools.product(*choices.values()):
        settings = dict(zip(choices, values))
        if settings["zero"] is True and (settings["allreduce"] == "hierarchical" or
                                         settings["overlap"] or settings["wire"] == "bf16"):
            continue  # refused by the trainer (Note [ZeRO-1])
        trial = simulate(profile, cluster, ranks, settings, batch)
        # A change must gain more than the model's resolution to be advised.
        if trial["step_ms"] < min(best["step_ms"], base["step_ms"] * 0.97):
            best = trial
    return base, best, alone
