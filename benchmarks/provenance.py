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


def commit():
    return subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown commit"


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
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return {"commit": commit(), "tree": "modified" if dirty else "clean",
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "cpu": cpu_model(),
            "cpu_id": cpu_family_model(), "cores": os.cpu_count(), "lscpu": lscpu,
            "load_average_start": os.getloadavg(), "kernel": os.uname().release}
