"""What every results file records about where and when it was measured."""

import os
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def git(*args):
    """git's output in the source tree; empty without git (a user's machine may have none) or
    outside a clone."""
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True,
                              text=True).stdout.strip()
    except FileNotFoundError:
        return ""


def commit():
    return git("rev-parse", "--short", "HEAD") or "unknown commit"


def cpu_family_model():
    """'family F, model M, stepping S': the CPU model string of a VM is often generic."""
    fields = {}
    for line in open("/proc/cpuinfo"):
        key = line.split(":", 1)[0].strip()
        if key in ("cpu family", "model", "stepping") and key not in fields:
            fields[key] = line.split(":", 1)[1].strip()
    return (f"family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}, "
            f"stepping {fields.get('stepping', '?')}")


def record():
    """The whole provenance of a results file: commit (and whether the tree was clean), date,
    CPU, full lscpu, load averages at the start, kernel."""
    dirty = git("status", "--porcelain", "--untracked-files=no")
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        lscpu = "lscpu not found"
    return {"commit": commit(), "tree": "modified" if dirty else "clean",
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": cpu_model(),
            "cpu_id": cpu_family_model(), "cores": os.cpu_count(), "lscpu": lscpu,
            "load_average_start": os.getloadavg(), "kernel": os.uname().release}
