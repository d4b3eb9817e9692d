"""Shared by the scenario runners: their command line, the environment for mpiexec in tests, and
the loop that runs named scenarios (methods of an object), each timed, and prints 'N passed, M
failed'."""

import argparse
import os
import subprocess
import time


def required_args(*flags):
    """The runner's command line: every flag (--ddp-train, --mpiexec, ...) required, one value."""
    p = argparse.ArgumentParser()
    for flag in flags:
        p.add_argument(flag, required=True)
    return p.parse_args()


def mpi_env(**extra):
    """Lets Open MPI run as root (CI) and oversubscribed, over ob1 (see launch/ddp_run.sh)."""
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_pml="ob1", **extra)


def run_scenarios(title, scenarios, names):
    passed = failed = 0
    for name in names:
        start = time.monotonic()
        try:
            getattr(scenarios, name)()
            passed += 1
            print(f"ok   {name} ({time.monotonic() - start:.1f} s)", flush=True)
        except (AssertionError, subprocess.TimeoutExpired) as e:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - start:.1f} s): {e}", flush=True)
    print(f"{title}: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0
