#!/usr/bin/env python3
"""The installed package (Note [installed package]) and the C++ API (Note [C++ API]):
`cmake --install` of the build under test into a temporary prefix, then tests/consumer (a
separate CMake project: find_package(ddp_trainer), ddp_trainer::ddp_trainer) configured and built
against it, and its seed example run under mpiexec -n 2: every epoch's loss matches ddp_train's
run of configs/seed_example.yaml within 1e-6. Then its model_state program (Note [model state]:
two fits in a row, saved weights, evaluate, predict) on 1 and 2 ranks: both ranks predict the same
bits, and 2 ranks train, evaluate and predict what 1 rank does within 1e-5.
  run_consumer_scenario.py --build build --root . --mpiexec mpiexec --ddp-train build/ddp_train"""

import argparse
import array
import json
import os
import struct
import subprocess
import sys
import tempfile

from scenarios import mpi_env


def run(cmd, what, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if result.returncode != 0:
        sys.exit(f"FAIL {what}: exit {result.returncode}\n{result.stdout[-1500:]}"
                 f"{result.stderr[-1500:]}")
    return result.stdout


def safetensors(path):
    """{name: [float, ...]} of a float32 safetensors file."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    out = {}
    for name, entry in header.items():
        if name != "__metadata__":
            begin, end = entry["data_offsets"]
            out[name] = array.array("f", data[begin:end]).tolist()
    return out


def model_state(mpiexec, app, tmp, env):
    """model_state on 1 and 2 ranks: (failures, what was compared)."""
    runs = {}
    for n in (1, 2):
        weights = os.path.join(tmp, f"model_state_{n}.safetensors")
        out = run([mpiexec, "-n", str(n), os.path.join(app, "model_state"), weights],
                  f"model_state on {n} rank(s)", env=env)
        predict = {int(x.split()[1]): [float(v) for v in x.split()[3:]]
                   for x in out.splitlines() if x.startswith("rank ")}
        evaluate = next(x for x in out.splitlines() if x.startswith("evaluate:")).split()
        runs[n] = (predict, [float(evaluate[2]), float(evaluate[4])], safetensors(weights))
    failures = []
    (p1, e1, w1), (p2, e2, w2) = runs[1], runs[2]
    if sorted(p2) != [0, 1] or p2[0] != p2[1]:
        failures.append(f"the 2 ranks predict differently: {p2}")
    if len(p1[0]) != 80 or len(p2[0]) != 80:
        failures.append(f"{len(p1[0])} and {len(p2[0])} outputs, not 8 x 10")
    worst = max([abs(a - b) for a, b in zip(p1[0], p2[0])] + [abs(a - b) for a, b in zip(e1, e2)] +
                [abs(a - b) for name in w1 for a, b in zip(w1[name], w2.get(name, []))])
    if sorted(w1) != sorted(w2) or not w1:
        failures.append(f"saved tensors differ: {sorted(w1)} vs {sorted(w2)}")
    if worst > 1e-5:
        failures.append(f"2 ranks vs 1: max difference {worst:.3g} (> 1e-5)")
    return failures, f"model_state, 2 ranks vs 1 (weights, evaluate, predict): max difference {worst:.3g}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--mpiexec", required=True)
    p.add_argument("--ddp-train", required=True)
    p.add_argument("--cxx", help="the compiler the library was built with")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="ddp_consumer_") as tmp:
        prefix, app = os.path.join(tmp, "prefix"), os.path.join(tmp, "app")
        run(["cmake", "--install", a.build, "--prefix", prefix], "cmake --install")
        compiler = [f"-DCMAKE_CXX_COMPILER={a.cxx}"] if a.cxx else []
        run(["cmake", "-S", os.path.join(a.root, "tests", "consumer"), "-B", app,
             f"-DCMAKE_PREFIX_PATH={prefix}", *compiler], "configure the consumer")
        run(["cmake", "--build", app], "build the consumer")
        env = mpi_env()
        out = run([a.mpiexec, "-n", "2", os.path.join(app, "seed_example")], "seed_example",
                  env=env)
        line = next(x for x in out.splitlines() if x.startswith("history: loss"))
        api = [float(v) for v in line.split()[2:]]
        run_dir = os.path.join(tmp, "run")
        # keras::Adam is Keras' Adam (its epsilon and rule), the config's PyTorch's unless told.
        run([a.mpiexec, "-n", "2", a.ddp_train, "--config",
             os.path.join(a.root, "configs", "seed_example.yaml"), "--run-dir", run_dir,
             "--set", "optimizer.rule=keras"], "ddp_train seed_example", env=env)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            yaml_run = [json.loads(x)["loss"] for x in f if x.strip()]
        assert len(api) == len(yaml_run) == 10, f"epochs: API {len(api)}, ddp_train {len(yaml_run)}"
        worst = max(abs(x - y) for x, y in zip(api, yaml_run))
        print(f"C++ API vs ddp_train, 10 epochs on 2 ranks: max loss difference {worst:.3g}")
        if worst > 1e-6:
            print(f"FAIL: losses differ: API {api}, ddp_train {yaml_run}")
            return 1
        failures, compared = model_state(a.mpiexec, app, tmp, env)
        print(compared)
        for failure in failures:
            print(f"FAIL: {failure}")
        if failures:
            return 1
    print("consumer scenario: 2 passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
