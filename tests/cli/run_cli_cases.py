#!/usr/bin/env python3
"""Runs ddp_train end to end under mpiexec for every case of cases.tsv and checks the exit code,
the message, and the bounds: every job ends within 60 s (no rank may hang), bad input is refused
within 10 s, and every process of a case runs under a 4 GB address-space limit, so an input
that would allocate more than its checked bound fails the case instead of passing on a big
machine."""

import argparse
import concurrent.futures
import gzip
import json
import math
import os
import re
import resource
import shlex
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

from scenarios import mpi_env

TIME_LIMIT_S = 60
REFUSAL_LIMIT_S = 10
ADDRESS_SPACE = 4 << 30


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def write_idx(path, dims, data, compress=False):
    header = bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + bytes(data))


def damage(src, dst, edit):
    with open(src, "rb") as f:
        data = bytearray(f.read())
    edit(data)
    with open(dst, "wb") as f:
        f.write(data)


def write_checkpoint_fixtures(tmp, ddp_train, env):
    """A real checkpoint of the CSV model (1 rank, 5 steps) and damaged copies of it."""
    for name, extra in (("ckrun", []),
                        ("ckweak", ["--set", "training.global_batch_size=~",
                                    "--set", "training.batch_size_per_rank=8"])):
        subprocess.run([ddp_train, "--config", f"{tmp}/csv.yaml", "--run-dir", f"{tmp}/{name}",
                        "--stop-after", "5"] + extra, check=True, env=env, capture_output=True,
                       timeout=TIME_LIMIT_S)
    good = f"{tmp}/ckrun/checkpoints/ckpt-000000000005.ddpc"
    damage(good, f"{tmp}/ck_truncated.ddpc", lambda d: d.__delitem__(slice(len(d) // 2, None)))
    damage(good, f"{tmp}/ck_magic.ddpc", lambda d: d.__setitem__(0, ord("X")))
    damage(good, f"{tmp}/ck_newer.ddpc", lambda d: d.__setitem__(8, 2))
    damage(good, f"{tmp}/ck_flipped.ddpc", lambda d: d.__setitem__(len(d) - 100, d[len(d) - 100] ^ 0x40))
    os.makedirs(f"{tmp}/ckbad/checkpoints")
    damage(good, f"{tmp}/ckbad/checkpoints/ckpt-000000000005.ddpc",
           lambda d: d.__delitem__(slice(100, None)))
    with open(f"{tmp}/bad_weights.safetensors", "wb") as f:
        f.write(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    # The seed example's weights, well formed, with one NaN in layers.1.bias.
    shapes = [("layers.0.weight", [64, 10]), ("layers.0.bias", [64]),
              ("layers.1.weight", [64, 64]), ("layers.1.bias", [64]),
              ("layers.2.weight", [10, 64]), ("layers.2.bias", [10])]
    header, blob = {}, b""
    for name, shape in shapes:
        values = [0.01] * math.prod(shape)
        if name == "layers.1.bias":
            values[3] = float("nan")
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [len(blob), len(blob) + 4 * len(values)]}
        blob += struct.pack(f"<{len(values)}f", *values)
    text = json.dumps(header).encode()
    with open(f"{tmp}/nan_weights.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob)


def write_fixtures(tmp):
    rows = [f"{i % 7 / 7:.4f},{i % 5 / 5:.4f},{i % 3 / 3:.4f},{i % 3}" for i in range(96)]
    with open(f"{tmp}/good.csv", "w") as f:
        f.write("a,b,c,label\n" + "\n".join(rows) + "\n")
    for name, cell in (("nan_cell", "nan"), ("inf_cell", "-inf")):
        bad = list(rows)
        bad[2] = bad[2].replace(bad[2].split(",")[1], cell, 1)
        with open(f"{tmp}/{name}.csv", "w") as f:
            f.write("a,b,c,label\n" + "\n".join(bad) + "\n")
    # Multi-label: 3 features, then 5 0/1 label columns; the bad copy has a 2 on line 4, label 3.
    multi = [f"{i % 7 / 7:.4f},{i % 5 / 5:.4f},{i % 3 / 3:.4f}," +
             ",".join(str((i >> j) & 1) for j in range(5)) for i in range(64)]
    for name, table in (("multi", multi), ("multi_bad", multi[:2] + ["0.5,0.5,0.5,0,1,0,2,1"] +
                                                         multi[3:])):
        with open(f"{tmp}/{name}.csv", "w") as f:
            f.write("a,b,c,l0,l1,l2,l3,l4\n" + "\n".join(table) + "\n")
    # NumPy: 96 samples of 3 float32 features and uint8 labels, as good.csv, and broken copies.
    def npy(descr, shape, data, fortran="False"):
        header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
        header += " " * (63 - (10 + len(header)) % 64) + "\n"
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data
    values = [float(v) for r in rows for v in r.split(",")[:3]]
    x = struct.pack(f"<{len(values)}f", *values)
    y = bytes(i % 3 for i in range(96))
    for name, blob in (("good_x", npy("<f4", "(96, 3)", x)), ("good_y", npy("|u1", "(96,)", y)),
                       ("fortran_x", npy("<f4", "(96, 3)", x, "True")),
                       ("truncated_x", npy("<f4", "(96, 3)", x[:-4])),
                       ("short_y", npy("|u1", "(95,)", y[:95])),
                       ("float_y", npy("<f4", "(96,)", struct.pack("<96f", *y))),
                       ("weights", npy("<f8", "(96,)", struct.pack("<96d", *[i % 4 / 2 for i in
                                                                            range(96)]))),
                       ("negative_weights", npy("<f4", "(96,)", struct.pack(
                           "<96f", *[-1 if i == 5 else 1 for i in range(96)])))):
        with open(f"{tmp}/{name}.npy", "wb") as f:
            f.write(blob)
    with zipfile.ZipFile(f"{tmp}/good.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", npy("<f4", "(96, 3)", x))
        z.writestr("y.npy", npy("|u1", "(96,)", y))
    # An autoencoder's data: 96 images of 4x4x1 in [0, 1], and the same images as the targets
    # (labels of any rank, as Keras' y).
    pixels = struct.pack("<1536f", *[((i * 37) % 17) / 16 for i in range(96 * 16)])
    with zipfile.ZipFile(f"{tmp}/autoencoder.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", npy("<f4", "(96, 4, 4, 1)", pixels))
        z.writestr("y.npy", npy("<f4", "(96, 4, 4, 1)", pixels))
    with open(f"{tmp}/duplicate.yaml", "w") as f:
        f.write("seed: 1\nseed: 2\n")
    os.mkfifo(f"{tmp}/fifo")
    # Headers that declare far more than they hold: 2^48 pixels, and 78 MB behind 16 bytes.
    write_idx(f"{tmp}/huge_images.idx", [65536, 65536, 65536], [0] * 16)
    write_idx(f"{tmp}/huge_labels.idx", [65536], [0] * 16)
    write_idx(f"{tmp}/short_images.idx", [100000, 28, 28], [0] * 16)
    write_idx(f"{tmp}/short_labels.idx", [100000], [0] * 16)
    os.makedirs(f"{tmp}/a_directory")
    for name in ("rank0.csv", "differs_0.csv"):
        with open(f"{tmp}/{name}", "w") as f:
            f.write("a,b,c,label\n" + "\n".join(rows) + "\n")
    bad = list(rows)
    bad[3] = "0.5,x,0.5,1"  # line 5 of the file, column 2
    with open(f"{tmp}/rank1.csv", "w") as f:
        f.write("a,b,c,label\n" + "\n".join(bad) + "\n")
    with open(f"{tmp}/bad_cell.csv", "w") as f:
        f.write("a,b,c,label\n" + "\n".join(rows[:2] + ["1,x,1,0"] + rows[2:]) + "\n")
    differs = list(rows)
    differs[10] = "0.9999,0.5,0.5,1"
    with open(f"{tmp}/differs_1.csv", "w") as f:
        f.write("a,b,c,label\n" + "\n".join(differs) + "\n")
    with open(f"{tmp}/csv.yaml", "w") as f:
        f.write(f"""seed: 4
data:
  train: {{type: csv, path: {tmp}/good.csv}}
  test: {{type: csv, path: {tmp}/good.csv}}
model:
  layers:
    - {{type: dense, units: 16, activation: relu}}
    - {{type: dense, units: 3, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {{type: sgd, learning_rate: 0.1, momentum: 0.9}}
training: {{epochs: 3, global_batch_size: 16}}
""")
    pixels = [(i * 37) % 256 for i in range(40 * 4 * 4)]
    labels = [i % 10 for i in range(40)]
    write_idx(f"{tmp}/images.idx", [40, 4, 4], pixels)
    write_idx(f"{tmp}/labels.idx", [40], labels)
    write_idx(f"{tmp}/labels_39.idx", [39], labels[:39])
    big = list(labels)
    big[7] = 12
    write_idx(f"{tmp}/labels_big.idx", [40], big)
    with open(f"{tmp}/bad_magic.idx", "wb") as f:
        f.write(b"\x12\x34\x08\x03garbage")
    with open(f"{tmp}/corrupt_gzip.idx.gz", "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage-not-deflate")
    write_idx(f"{tmp}/full.idx.gz", [40, 4, 4], pixels, compress=True)
    with open(f"{tmp}/full.idx.gz", "rb") as f:
        blob = f.read()
    with open(f"{tmp}/truncated.idx.gz", "wb") as f:
        f.write(blob[: len(blob) // 2])
    with open(f"{tmp}/idx.yaml", "w") as f:
        f.write(f"""data:
  train: {{type: idx, images: {tmp}/images.idx, labels: {tmp}/labels.idx}}
model:
  input: [4, 4]
  layers:
    - {{type: flatten}}
    - {{type: dense, units: 10, activation: softmax}}
loss: sparse_categorical_crossentropy
optimizer: {{type: adam}}
training: {{epochs: 1, global_batch_size: 8}}
""")
    with open(f"{tmp}/broken.yaml", "w") as f:
        f.write("seed: 1\ndata: [1, 2\n")


def check_success(output, run_dir):
    """A successful run prints one line per epoch and writes one metrics record per epoch."""
    # Each epoch's own line, not the progress lines of a slow epoch ("... (rank 0) - 10s").
    epoch_line = r"^Epoch (\d+)/(\d+) - (?!.*\(rank 0\) - \d+s$).*$"
    epochs = re.findall(epoch_line, output, re.M)
    if not epochs:
        return "no epoch lines"
    # Note [early stopping] may end the run before the last configured epoch.
    stopped = re.search(r"^Epoch (\d+): early stopping: ", output, re.M)
    total = int(stopped.group(1)) if stopped else int(epochs[0][1])
    if [int(e) for e, _ in epochs] != list(range(1, total + 1)):
        return f"epoch lines {[e for e, _ in epochs]} are not 1..{total}"
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    if len(records) != total:
        return f"metrics.jsonl has {len(records)} records, expected {total}"
    # Every metric of the epoch line ("- f1: 0.9123", "- val_f1: ..."), and the fixed keys.
    last_line = [m.group(0) for m in re.finditer(epoch_line, output, re.M)][-1]
    shown = re.findall(r" - ([a-z_0-9]+): [-\d.]+", last_line)
    for key in ["epoch", "loss", "samples_per_sec", "seconds"] + shown:
        if key not in records[-1]:
            return f"metrics.jsonl lacks '{key}'"
    if not os.path.exists(os.path.join(run_dir, "config.yaml")):
        return "no resolved config.yaml in the run directory"
    return None


def run_case(case, args, tmp, env):
    """Returns (passed, report)."""
    name, ranks, code, stream, pattern, *rest = case
    argv = rest[0] if rest else ""
    argv = argv.replace("@configs@", args.configs).replace("@tmp@", tmp)
    run_dir = os.path.join(tmp, "runs", name)
    informational = "--help" in argv or "--version" in argv
    extra = [] if "--run-dir" in argv or informational or not argv else ["--run-dir", run_dir]
    command = [args.mpiexec, "-n", ranks, args.ddp_train] + shlex.split(argv) + extra
    # Cases run two at a time, and an mpiexec that ends removes the session directory's top level
    # when it finds it empty, under the feet of one starting beside it ("mkdir ... No such file or
    # directory", seen in CI): every case gets a session directory of its own.
    session_dir = os.path.join(tmp, "ompi-session", name)
    os.makedirs(session_dir)
    start = time.monotonic()
    try:
        result = subprocess.run(command, capture_output=True, text=True,
                                env=dict(env, OMPI_MCA_orte_tmpdir_base=session_dir),
                                timeout=TIME_LIMIT_S, stdin=subprocess.DEVNULL,
                                preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        return False, f"FAIL {name}: no exit within {TIME_LIMIT_S} s (hang)"
    seconds = time.monotonic() - start
    # Open MPI adds its own banner about non-zero exits; the product's lines are ours.
    text = result.stderr if stream == "stderr" else result.stdout
    ours = "\n".join(l for l in text.splitlines() if "ddp_train" in l or stream == "stdout")
    problems = []
    if result.returncode != int(code):
        problems.append(f"exit code {result.returncode}, expected {code}")
    if int(code) != 0 and seconds > REFUSAL_LIMIT_S:
        problems.append(f"refused after {seconds:.1f} s, more than {REFUSAL_LIMIT_S} s")
    if not re.search(pattern, ours, re.M):
        problems.append(f"{stream} does not match /{pattern}/")
    errors = result.stderr.count("ddp_train: error:")
    if int(code) != 0 and errors != 1:
        problems.append(f"{errors} 'ddp_train: error:' lines, expected exactly one (an error "
                        "every rank knows of is printed once)")
    if int(code) == 0 and not informational:
        problem = check_success(result.stdout, run_dir)
        if problem:
            problems.append(problem)
    if not problems:
        return True, f"ok   {name} ({seconds:.1f} s)"
    return False, "\n".join([
        f"FAIL {name} ({seconds:.1f} s): " + "; ".join(problems),
        "  command: " + " ".join(shlex.quote(c) for c in command),
        "  stdout: " + result.stdout[-1500:].replace("\n", "\n          "),
        "  stderr: " + result.stderr[-1500:].replace("\n", "\n          ")])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ddp-train", required=True)
    parser.add_argument("--mpiexec", required=True)
    parser.add_argument("--cases", required=True)
    parser.add_argument("--configs", required=True)
    parser.add_argument("--only", help="regex of case names to run")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    env = mpi_env()
    with tempfile.TemporaryDirectory(prefix="ddp_cli_") as tmp:
        write_fixtures(tmp)
        write_checkpoint_fixtures(tmp, args.ddp_train, env)
        with open(args.cases) as f:
            lines = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#")]
        cases = [l.split("\t") for l in lines]
        cases = [c for c in cases if not args.only or re.search(args.only, c[0])]
        # Two at a time: most of a failing case's time is Open MPI tearing the job down.
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            reports = list(pool.map(lambda c: run_case(c, args, tmp, env), cases))
    passed = sum(1 for ok, _ in reports if ok)
    failed = len(reports) - passed
    for _, report in reports:
        print(report)
    print(f"cli: {passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
