#!/usr/bin/env python3
"""Every numeric value of a config, made hostile: each number of the resolved seed example
(data sizes, layer units, optimizer and schedule settings, batch, checkpoint and training knobs)
set in turn to NaN, +Inf, -Inf, 0, -1, 0.5, 10^8 and huge values through --set, then ddp_train run
to the point where training would start (--stop-after 0) under a 4 GB address-space limit and a
10 s bound. Each run must either be accepted (exit 0) or refused with exit 2 (config) or 3 (data)
in exactly one error line that names the key; never a crash, another exit code, a hang or an
error that does not say which key.
  run_config_properties.py --ddp-train build/ddp_train --configs configs"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile

import yaml

# 1e8: fits a 24 GB machine's arithmetic checks but not the 4 GB this test allows a process, so
# the bounds must follow the process's limit, not the machine's memory.
HOSTILE = [".nan", ".inf", "-.inf", "0", "-1", "0.5", "100000000", "1e30", "9223372036854775807"]
LIMIT_S = 10
ADDRESS_SPACE = 4 << 30


def numeric_keys(node, path=""):
    """Dotted paths (list items by index, as --set takes them) of every number in the config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numeric_keys(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from numeric_keys(value, f"{path}.{i}")
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ddp-train", required=True)
    p.add_argument("--configs", required=True)
    args = p.parse_args()
    config = os.path.join(args.configs, "seed_example.yaml")
    failures, runs = [], 0
    with tempfile.TemporaryDirectory(prefix="ddp_props_") as tmp:
        # The resolved config lists every key with its default, not only those the file sets.
        subprocess.run([args.ddp_train, "--config", config, "--run-dir", f"{tmp}/resolve",
                        "--stop-after", "0"], check=True, capture_output=True, timeout=60)
        with open(f"{tmp}/resolve/config.yaml") as f:
            keys = list(numeric_keys(yaml.safe_load(f)))
        for key in keys:
            for value in HOSTILE:
                runs += 1
                run_dir = f"{tmp}/run{runs}"
                cmd = [args.ddp_train, "--config", config, "--run-dir", run_dir,
                       "--stop-after", "0", "--set", f"{key}={value}"]
                try:
                    r = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S,
                                       preexec_fn=limit_memory, stdin=subprocess.DEVNULL)
                except subprocess.TimeoutExpired:
                    failures.append(f"{key}={value}: not refused within {LIMIT_S} s")
                    continue
                lines = r.stderr.strip().splitlines()
                if r.returncode == 0:
                    continue
                leaf = key.split(".")[-1]
                if r.returncode not in (2, 3):
                    failures.append(f"{key}={value}: exit {r.returncode}: {r.stderr.strip()[-300:]}")
                elif len(lines) != 1 or "ddp_train: error: " not in lines[0]:
                    failures.append(f"{key}={value}: not one error line: {r.stderr.strip()[-300:]}")
                elif leaf not in lines[0]:
                    failures.append(f"{key}={value}: the error does not name the key: {lines[0]}")
    for f in failures:
        print("FAIL", f)
    print(f"config properties: {len(keys)} numeric keys x {len(HOSTILE)} values = {runs} runs, "
          f"{len(failures)} failed")
    return 1 if failures or not keys else 0


if __name__ == "__main__":
    sys.exit(main())
