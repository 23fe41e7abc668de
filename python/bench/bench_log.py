"""What logging costs a training loop.

For Loupe (online, and offline to the spool only; the peers are in
bench_peers.py, which reuses this file's rows and server): the average
time of one ``log()`` call of a dict of 5 scalars over N calls (default
20 000 = 100 000 points), measured as the
wall time of the whole loop divided by the calls, so the tracker's own
background work (serialising, compressing, sending) is in it; then the time
``finish()`` takes to get the rest out; then the bytes on disk per point in
the tracker's storage.

    python python/bench/bench_log.py                 # starts target/release/loupe serve itself
    python python/bench/bench_log.py --calls 100000
    LOUPE_BIN=/path/to/loupe python python/bench/bench_log.py
    python python/bench/bench_log.py --json out.json

The values are fixed before the loop (random floats, the worst case for
formatting: 17 significant digits each), so making them is not timed.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))

KEYS = ("train/loss", "train/acc", "lr", "grad_norm", "tokens_per_s")


def make_rows(calls: int, seed: int = 1) -> List[Dict[str, float]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(calls):
        rows.append(
            {
                "train/loss": 2.5 * (0.9995**i) + rnd.random() * 0.05,
                "train/acc": rnd.random(),
                "lr": 3e-4 * min(1.0, i / 1000) + rnd.random() * 1e-9,
                "grad_norm": rnd.gauss(1.0, 0.1),
                "tokens_per_s": 50_000 + rnd.random() * 1000,
            }
        )
    return rows


def dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


# --- a Loupe server for the benchmark --------------------------------------------


def loupe_bin() -> str:
    b = os.environ.get("LOUPE_BIN") or os.path.join(REPO, "target", "release", "loupe")
    if not os.path.isfile(b):
        sys.exit("no loupe binary at %s: build it with `cargo build --release -p loupe` or set LOUPE_BIN" % b)
    return b


class Server:
    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % port
        self.proc = subprocess.Popen(
            [loupe_bin(), "serve", "--addr", "127.0.0.1:%d" % port, "--data", data_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        line = self.proc.stdout.readline().decode()
        if "listening on" not in line:
            raise RuntimeError("loupe serve did not start: %r" % line)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- trackers --------------------------------------------------------------------


def bench_loupe(rows: List[Dict[str, float]], workdir: str, server_url: str = "") -> Dict[str, float]:
    import loupe

    srv = None
    data_dir = os.path.join(workdir, "loupe-data")
    if not server_url:
        srv = Server(data_dir)
        server_url = srv.url
    try:
        run = loupe.init(project="bench", config={"calls": len(rows)}, server=server_url,
                         dir=os.path.join(workdir, "loupe-run"), capture_console=False)
        log = run.log
        gc.collect()
        c0 = time.process_time()
        t0 = time.perf_counter()
        for row in rows:
            log(row)
        t1 = time.perf_counter()
        run.finish()
        t2 = time.perf_counter()
        c2 = time.process_time()
        points = len(rows) * len(KEYS)
        # Check it all arrived before trusting the numbers.
        with urllib.request.urlopen("%s/api/v1/runs/%s/series?limit=10000" % (server_url, run.id)) as r:
            got = sum(s["count"] for s in json.load(r)["series"])
        out = {
            "us_per_call": (t1 - t0) / len(rows) * 1e6,
            "finish_s": t2 - t1,
            # Every thread of this process, from the first log() to the end of
            # finish(): the whole cost to the training process.
            "cpu_us_per_call": (c2 - c0) / len(rows) * 1e6,
            "points": points,
            "points_stored": got,
        }
        if srv is not None:
            out["bytes_per_point_live"] = dir_bytes(data_dir) / points
            srv.stop()
            srv = None
            out["bytes_per_point"] = dir_bytes(data_dir) / points
        return out
    finally:
        if srv is not None:
            srv.stop()


def bench_loupe_offline(rows: List[Dict[str, float]], workdir: str, server_url: str = "") -> Dict[str, float]:
    """Loupe with nothing but the spool (``mode="offline"``)."""
    import loupe

    import logging

    logging.getLogger("loupe").setLevel(logging.ERROR)  # "offline run … sync it with …"
    d = os.path.join(workdir, "loupe-offline")
    run = loupe.init(project="bench", mode="offline", dir=d, capture_console=False)
    log = run.log
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    for row in rows:
        log(row)
    t1 = time.perf_counter()
    run.finish()
    t2 = time.perf_counter()
    c2 = time.process_time()
    points = len(rows) * len(KEYS)
    return {"us_per_call": (t1 - t0) / len(rows) * 1e6, "finish_s": t2 - t1,
            "cpu_us_per_call": (c2 - c0) / len(rows) * 1e6, "points": points,
            "bytes_per_point": dir_bytes(d) / points}


# Loupe's own variants. The peers (trackio, wandb offline, tensorboardX, MLflow),
# side by side with Loupe in one run, are in bench_peers.py.
TRACKERS: Dict[str, Callable[..., Dict[str, float]]] = {
    "loupe": bench_loupe,
    "loupe-offline": bench_loupe_offline,
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=3, help="runs per tracker; the best is reported")
    p.add_argument("--only", nargs="*", default=None, help="trackers to run (default: all)")
    p.add_argument("--server", default="", help="use this Loupe server instead of starting one")
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args()
    rows = make_rows(args.calls)
    results = {}
    for name, fn in TRACKERS.items():
        if args.only and name not in args.only:
            continue
        best = None
        for _ in range(args.repeat):
            work = tempfile.mkdtemp(prefix="loupe-bench-")
            try:
                r = fn(rows, work, args.server)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if best is None or r["us_per_call"] < best["us_per_call"]:
                best = r
        results[name] = best
        extra = ""
        if "points_stored" in best:
            extra += "; %d/%d points stored" % (best["points_stored"], best["points"])
        if "bytes_per_point" in best:
            extra += "; %.2f B/point on disk" % best["bytes_per_point"]
        if "bytes_per_point_live" in best:
            extra += " (%.2f B/point before the server's shutdown flush)" % best["bytes_per_point_live"]
        print("%-14s %5.2f µs per log() of 5 scalars, loop wall time; %5.2f µs of CPU per log() counting the "
              "background threads and finish(); finish() %.3f s%s"
              % (name, best["us_per_call"], best["cpu_us_per_call"], best["finish_s"], extra))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"calls": args.calls, "python": sys.version.split()[0], "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
