#!/usr/bin/env python3
"""Overhead of `loupe agent`: CPU (% of one core) and peak RSS.

Starts the real `loupe serve` on a temporary data directory and
`loupe agent --interval 1s` against it, lets the agent warm up, then measures
its CPU time (utime + stime from /proc/PID/stat, children excluded: it has
none) over the measuring window, and its peak resident memory (VmHWM from
/proc/PID/status). The targets (issue 4) are <= 1% of one core and <= 30 MB.

    cargo build --release -p loupe
    python3 bench/agent_overhead.py [--seconds 60] [--interval 1s] [--gpu]

Standard library only. Prints a table and one JSON line.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from overhead_common import default_binary, start_server, status_kib, ticks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loupe", default=default_binary(), help="the loupe binary (release build)")
    ap.add_argument("--seconds", type=float, default=60.0, help="measuring window")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    ap.add_argument("--interval", default="1s", help="the agent's --interval")
    ap.add_argument("--gpu", action="store_true", help="let the agent load NVML")
    a = ap.parse_args()
    if not os.path.exists(a.loupe):
        sys.exit(f"{a.loupe} not found: cargo build --release -p loupe")

    hz = os.sysconf("SC_CLK_TCK")
    tmp = tempfile.mkdtemp(prefix="loupe-agent-bench-")
    server = agent = None
    try:
        server, url = start_server(a.loupe, os.path.join(tmp, "data"))
        cmd = [a.loupe, "agent", "--server", url, "--interval", a.interval,
               "--buffer-dir", os.path.join(tmp, "buffer")]
        if not a.gpu:
            cmd.append("--no-gpu")
        agent = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")},
        )
        time.sleep(a.warmup)
        if agent.poll() is not None:
            sys.exit("loupe agent exited early:\n" + agent.stderr.read())
        t0, k0 = time.monotonic(), ticks(agent.pid)
        time.sleep(a.seconds)
        t1, k1 = time.monotonic(), ticks(agent.pid)
        hwm = status_kib(agent.pid, "VmHWM")
        rss = status_kib(agent.pid, "VmRSS")
        total_ticks = k1
        agent.send_signal(signal.SIGTERM)
        ts = time.monotonic()
        rc = agent.wait(timeout=30)
        exit_s = time.monotonic() - ts
        log = agent.stderr.read()

        cpu = (k1 - k0) / hz / (t1 - t0) * 100.0
        result = {
            "interval": a.interval,
            "window_s": round(t1 - t0, 1),
            "cpu_percent_of_core": round(cpu, 3),
            "cpu_seconds_total": total_ticks / hz,
            "max_rss_mb": round(hwm / 1024, 2),
            "rss_mb_at_end": round(rss / 1024, 2),
            "exit_code": rc,
            "exit_after_sigterm_s": round(exit_s, 2),
        }
        print(f"loupe agent --interval {a.interval}, {result['window_s']} s measured "
              f"after {a.warmup:.0f} s warm-up")
        print(f"  CPU        {cpu:6.3f} % of one core   (target <= 1 %)")
        print(f"  max RSS    {hwm / 1024:6.2f} MB            (target <= 30 MB)")
        print(f"  RSS at end {rss / 1024:6.2f} MB")
        print(f"  SIGTERM -> exit {rc} in {exit_s:.2f} s")
        print(json.dumps(result))
        if rc != 0:
            print(log, file=sys.stderr)
            return 1
        return 0
    finally:
        for p in (agent, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
