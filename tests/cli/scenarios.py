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
    """Lets Open MPI run as root (CI) and oversubscribed, over ob1 (see launch/ddp_run.sh).
    mpiexec waits a second after each signal of its kill sequence for a job with a non-zero exit
    (odls_base_sigkill_timeout): 2.1 s of every refused input, where ddp_train's ranks have agreed
    on the error and printed it before any exits (and it catches no SIGTERM that could need the
    time), so the tests take 0.1 s."""
    return dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_pml="ob1",
                OMPI_MCA_odls_base_sigkill_timeout="0", **extra)


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
