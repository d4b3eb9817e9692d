#!/usr/bin/env python3
"""The installed package (Note [installed package]) and the C++ API (Note [C++ API]):
`cmake --install` of the build under test into a temporary prefix, then tests/consumer (a
separate CMake project: find_package(ddp_trainer), ddp_trainer::ddp_trainer) configured and built
against it, and its seed example run under mpiexec -n 2: every epoch's loss matches ddp_train's
run of configs/seed_example.yaml within 1e-6.
  run_consumer_scenario.py --build build --root . --mpiexec mpiexec --ddp-train build/ddp_train"""

import argparse
import json
import os
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
        run([a.mpiexec, "-n", "2", a.ddp_train, "--config",
             os.path.join(a.root, "configs", "seed_example.yaml"), "--run-dir", run_dir],
            "ddp_train seed_example", env=env)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            yaml_run = [json.loads(x)["loss"] for x in f if x.strip()]
        assert len(api) == len(yaml_run) == 10, f"epochs: API {len(api)}, ddp_train {len(yaml_run)}"
        worst = max(abs(x - y) for x, y in zip(api, yaml_run))
        print(f"C++ API vs ddp_train, 10 epochs on 2 ranks: max loss difference {worst:.3g}")
        if worst > 1e-6:
            print(f"FAIL: losses differ: API {api}, ddp_train {yaml_run}")
            return 1
    print("consumer scenario: 1 passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
