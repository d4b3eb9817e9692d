"""Cluster files for launch/ddp_scale.py (Note [scaling model] in scale_model.py): reading and
checking them, and the measured all-reduce curves they may name."""
import json
import math
import os

import yaml

GBIT = 1e9 / 8  # bytes per second in one Gbit/s
CLUSTER_KEYS = {"name", "ranks", "ranks_per_host", "cores_per_host", "hosts_share_cores",
                "compute_speed", "gpu_tflops", "intra_host", "inter_host", "collective",
                "sweeps"}
LINK_KEYS = {"bandwidth_gbit", "latency_us", "efficiency", "burst_kb", "source"}
COLLECTIVES = {"mpi", "hierarchical", "nccl"}


class ClusterError(Exception):
    """A bad cluster file: the message names the file and the key."""


class Curve:
    """Milliseconds for b bytes, piecewise linear through measured (bytes, ms) points; beyond
    them, the latency and per-byte terms of the nearest interval."""

    def __init__(self, rows):
        points = sorted((float(r["bytes"]), float(r["ms"])) for r in rows)
        if len(points) < 2:
            raise ValueError("a curve needs at least two sizes")
        self.points = points
        # How long the link rested before each call (bench_allreduce --idle-ms); 0: back to back.
        self.rest_ms = max(float(r.get("idle_ms", 0)) for r in rows)

    def ms(self, size):
        p = self.points
        i = next((k for k in range(1, len(p)) if size <= p[k][0]), len(p) - 1)
        (b0, t0), (b1, t1) = p[i - 1], p[i]
        return max(0.0, t0 + (t1 - t0) * (size - b0) / (b1 - b0))

    def fit(self):
        """Least-squares latency (ms) and bandwidth (bytes/s) over all points, for display."""
        n = len(self.points)
        mb = sum(b for b, _ in self.points) / n
        mt = sum(t for _, t in self.points) / n
        sbb = sum((b - mb) ** 2 for b, _ in self.points)
        slope = sum((b - mb) * (t - mt) for b, t in self.points) / sbb
        return mt - slope * mb, 1e3 / slope if slope > 0 else math.inf


def load_sweeps(files, cluster_path):
    """`sweeps:` (one file or a list, relative to the cluster file): what `ddp_scale.py sweep`
    wrote. Returns {(hosts, ranks_per_host): {"mpi/fp32": Curve, ...}}."""
    where = f"{cluster_path}: sweeps"
    files = files if isinstance(files, list) else [files]
    sweeps = {}
    for name in files:
        if not isinstance(name, str):
            raise ClusterError(f"{where}: {name!r} is not a file name")
        path = os.path.join(os.path.dirname(os.path.abspath(cluster_path)), name)
        try:
            with open(path) as f:
                node = json.load(f)
            layout = (int(node["layout"]["hosts"]), int(node["layout"]["ranks_per_host"]))
            sweeps[layout] = {key: Curve(rows) for key, rows in node["curves"].items()}
        except OSError as e:
            raise ClusterError(f"{where}: {path}: cannot read: {e.strerror}") from None
        except (ValueError, KeyError, TypeError) as e:
            raise ClusterError(f"{where}: {path}: not a sweep from ddp_scale.py sweep ({e})") \
                from None
    return sweeps


def link_from_sweeps(sweeps):
    """A latency + bandwidth line for the host links from a flat MPI fp32 sweep (the first layout
    that has one): the least-squares line through its curve, read as a ring among its ranks
    (2 (p - 1) latencies + 2 (p - 1) / p of the bytes over the bandwidth). None without one."""
    for (hosts, per_host), curves in sorted(sweeps.items()):
        if "mpi/fp32" in curves:
            p = hosts * per_host
            latency_ms, bandwidth = curves["mpi/fp32"].fit()
            return {"latency_ms": max(0.0, latency_ms) / (2 * (p - 1)),
                    "bandwidth": bandwidth * 2 * (p - 1) / p, "burst_bytes": 0.0}
    return None


def _number(value, where, positive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ClusterError(f"{where}: must be a number, got {value!r}")
    if positive and not value > 0:
        raise ClusterError(f"{where}: must be greater than 0, got {value}")
    if not value >= 0:
        raise ClusterError(f"{where}: must be 0 or greater, got {value}")
    return float(value)


def _only_known(node, known, prefix):
    for key in node:
        if key not in known:
            raise ClusterError(f"{prefix}{key}: unknown key (known: {', '.join(sorted(known))})")


def _link(node, where):
    if not isinstance(node, dict):
        raise ClusterError(f"{where}: must be a mapping with bandwidth_gbit and latency_us")
    _only_known(node, LINK_KEYS, f"{where}.")
    for key in ("bandwidth_gbit", "latency_us"):
        if key not in node:
            raise ClusterError(f"{where}.{key}: missing")
    efficiency = _number(node.get("efficiency", 1.0), f"{where}.efficiency")
    if efficiency > 1:
        raise ClusterError(f"{where}.efficiency: must be at most 1, got {efficiency}")
    return {"bandwidth": _number(node["bandwidth_gbit"], f"{where}.bandwidth_gbit") * GBIT
            * efficiency,
            "latency_ms": _number(node["latency_us"], f"{where}.latency_us", positive=False)
            / 1e3,
            "burst_bytes": _number(node.get("burst_kb", 0), f"{where}.burst_kb", positive=False)
            * 1e3}


def load_cluster(path):
    """Reads and checks a cluster file; ClusterError names the file and key on any fault."""
    try:
        with open(path) as f:
            node = yaml.safe_load(f)
    except OSError as e:
        raise ClusterError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ClusterError(f"{path}: not YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(node, dict):
        raise ClusterError(f"{path}: must be a mapping of cluster keys")
    _only_known(node, CLUSTER_KEYS, f"{path}: ")
    rph = node.get("ranks_per_host")
    if isinstance(rph, bool) or not isinstance(rph, int) or rph < 1:
        raise ClusterError(f"{path}: ranks_per_host: must be a whole number >= 1, got {rph!r}")
    ranks = node.get("ranks")
    if not isinstance(ranks, list) or not ranks:
        raise ClusterError(f"{path}: ranks: must be a list of rank counts, e.g. [8, 64, 512]")
    for r in ranks:
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ClusterError(f"{path}: ranks: {r!r} is not a whole number >= 1")
        if r > rph and r % rph:
            raise ClusterError(f"{path}: ranks: {r} is not divisible by ranks_per_host ({rph})")
    collective = node.get("collective", "mpi")
    if collective not in COLLECTIVES:
        raise ClusterError(f"{path}: collective: {collective!r} is not one of "
                           f"{', '.join(sorted(COLLECTIVES))}")
    cluster = {"file": path, "name": str(node.get("name", path)), "ranks": ranks,
               "ranks_per_host": rph, "collective": collective,
               "cores_per_host": int(_number(node.get("cores_per_host", rph),
                                             f"{path}: cores_per_host")),
               "hosts_share_cores": bool(node.get("hosts_share_cores", False)),
               "compute_speed": _number(node.get("compute_speed", 1.0), f"{path}: compute_speed"),
               "gpu_tflops": (_number(node["gpu_tflops"], f"{path}: gpu_tflops")
                              if "gpu_tflops" in node else None),
               "intra_host": (_link(node["intra_host"], f"{path}: intra_host")
                              if "intra_host" in node else None),
               "inter_host": (_link(node["inter_host"], f"{path}: inter_host")
                              if "inter_host" in node else None),
               "sweeps": None}
    if "sweeps" in node:
        cluster["sweeps"] = load_sweeps(node["sweeps"], path)
    if cluster["inter_host"] is None and cluster["sweeps"]:
        cluster["inter_host"] = link_from_sweeps(cluster["sweeps"])
    if cluster["inter_host"] is None and max(ranks) > rph:
        raise ClusterError(f"{path}: inter_host: missing (ranks span several hosts; give "
                           "bandwidth_gbit and latency_us, or sweeps: measured curves)")
    return cluster
