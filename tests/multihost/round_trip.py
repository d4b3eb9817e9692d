#!/usr/bin/env python3
"""Run on host h0 of launch/netns_cluster.sh: prints "round_trip_ms M", the median time of 9 TCP
connects from h0 to a listener on h1 (SYN out, SYN-ACK back: one round trip of the host links)."""

import os
import socket
import statistics
import subprocess
import sys
import time

PORT = 5555
LISTENER = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", {PORT}))
s.listen(64)
print("listening", flush=True)
while True:
    s.accept()[0].close()
"""


def main():
    h1 = next(line.split()[0] for line in open("/etc/hosts") if line.split()[1:] == ["h1"])
    listener = subprocess.Popen(["ip", "netns", "exec", os.environ["DDP_CLUSTER"] + "-h1",
                                 sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "listening", "no listener on h1"
        times = []
        for _ in range(9):
            with socket.socket() as s:
                start = time.perf_counter()
                s.connect((h1, PORT))
                times.append((time.perf_counter() - start) * 1e3)
        print(f"round_trip_ms {statistics.median(times):.2f}")
    finally:
        listener.kill()
        listener.wait()


if __name__ == "__main__":
    main()
