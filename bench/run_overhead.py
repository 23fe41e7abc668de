#!/usr/bin/env python3
"""Overhead of `loupe run`: the supervisor's own CPU (% of one core) and
peak RSS while it supervises a quiet training-like loop.

Starts the real `loupe serve` on a temporary data directory, then
`loupe run --interval 1s -- python3 -c LOOP`, where LOOP prints a metric
line (`step N loss=... lr=...`) every 100 ms for `--seconds`. Every 0.5 s it
reads the supervisor's utime + stime (/proc/PID/stat: its own threads only,
not the child's) and VmHWM (/proc/PID/status). CPU % is measured over the
steady window (after `--warmup`, until the child's last line) and over the
supervisor's whole life up to the last reading. The targets (issue 4) are
<= 1% of one core and <= 30 MB at a 1 s interval.

    cargo build --release -p loupe
    python3 bench/run_overhead.py [--seconds 60] [--interval 1s] [--every 0.1] [--gpu]

Standard library only. Prints a table and one JSON line.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from overhead_common import default_binary, start_server, status_kib, ticks

LOOP = """
import math, sys, time
n = int(sys.argv[1]); every = float(sys.argv[2])
t0 = time.time()
for i in range(n):
    print(f"step {i} loss={2.5 * math.exp(-i / 300) + 0.01 * math.sin(i):.4f} lr=3e-4")
    time.sleep(max(0.0, t0 + (i + 1) * every - time.time()))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loupe", default=default_binary(), help="the loupe binary (release build)")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long the child prints")
    ap.add_argument("--every", type=float, default=0.1, help="seconds between the child's lines")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before the steady window")
    ap.add_argument("--interval", default="1s", help="loupe run's --interval")
    ap.add_argument("--gpu", action="store_true", help="let loupe run load NVML")
    a = ap.parse_args()
    if not os.path.exists(a.loupe):
        sys.exit(f"{a.loupe} not found: cargo build --release -p loupe")

    hz = os.sysconf("SC_CLK_TCK")
    tmp = tempfile.mkdtemp(prefix="loupe-run-bench-")
    server = sup = None
    try:
        server, url = start_server(a.loupe, os.path.join(tmp, "data"))
        lines = int(a.seconds / a.every)
        cmd = [a.loupe, "run", "--server", url, "--interval", a.interval, "--dir", os.path.join(tmp, "spool")]
        if not a.gpu:
            cmd.append("--no-gpu")
        cmd += ["--", sys.executable, "-c", LOOP, str(lines), str(a.every)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")}
        start = time.monotonic()
        sup = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=tmp)
        readings = []  # (seconds since start, ticks, VmHWM KiB, VmRSS KiB)
        seen = 0
        os.set_blocking(sup.stdout.fileno(), False)
        while sup.poll() is None:
            try:
                chunk = sup.stdout.read()
                if chunk:
                    seen += chunk.count(b"\n")
            except (BlockingIOError, TypeError):
                pass
            try:
                readings.append((time.monotonic() - start, ticks(sup.pid),
                                 status_kib(sup.pid, "VmHWM"), status_kib(sup.pid, "VmRSS")))
            except (OSError, ValueError, IndexError):
                break  # exited between poll and read
            time.sleep(0.5)
        code = sup.wait()
        wall = time.monotonic() - start
        if not readings:
            sys.exit("loupe run ended before it could be measured")
        steady = [r for r in readings if a.warmup <= r[0] <= a.seconds]
        if len(steady) < 2:
            steady = readings
        (t0, c0, _, _), (t1, c1, _, _) = steady[0], steady[-1]
        cpu_steady = 100.0 * (c1 - c0) / hz / max(t1 - t0, 1e-9)
        tl, cl, _, _ = readings[-1]
        cpu_life = 100.0 * cl / hz / max(tl, 1e-9)
        hwm_mb = max(r[2] for r in readings) / 1024.0
        rss_mb = readings[-1][3] / 1024.0
        result = {
            "child_seconds": a.seconds, "line_every_s": a.every, "interval": a.interval,
            "lines_teed": seen, "lines_expected": lines, "exit_code": code, "wall_s": round(wall, 2),
            "cpu_percent_steady": round(cpu_steady, 3), "cpu_percent_lifetime": round(cpu_life, 3),
            "max_rss_mb": round(hwm_mb, 2), "last_rss_mb": round(rss_mb, 2),
        }
        print(f"loupe run overhead, child printing a metric line every {a.every}s for {a.seconds}s, "
              f"--interval {a.interval}")
        print(f"  CPU, steady window ({t1 - t0:.0f} s)   {cpu_steady:7.3f} % of one core   (target <= 1%)")
        print(f"  CPU, whole life to {tl:.0f} s        {cpu_life:7.3f} % of one core")
        print(f"  peak RSS (VmHWM)               {hwm_mb:7.2f} MB              (target <= 30 MB)")
        print(f"  lines teed {seen}/{lines}, exit code {code}")
        print(json.dumps(result))
    finally:
        for p in (sup, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
