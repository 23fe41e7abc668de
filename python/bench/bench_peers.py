"""Loupe next to its peers, in one run, on the same workload.

For each tracker: N calls (default 20 000) of its log call with a dict of 5
scalars and the step given — Loupe ``run.log(row, step=i)``, trackio
``trackio.log(row, step=i)``, wandb (offline) ``run.log(row, step=i)``,
tensorboardX five ``add_scalar`` calls, MLflow (SQLite tracking store)
``mlflow.log_metrics(row, step=i)`` — timed as the wall time of the whole
loop divided by the calls, so each tracker's background work that competes
with the loop (serialising, compressing, sending, writing) is in it; then
the time its finish call takes (``finish()``, ``close()``, ``end_run()``) for
the N × 5 points; then the bytes on disk per point:

- Loupe: how much the data directory of a real ``loupe serve`` (started on a
  fresh directory by this script) grew, measured after the server flushed
  everything (it is stopped, which flushes, before and after the run; its
  SQLite catalog counted by pages);
- trackio: its local directory (``TRACKIO_DIR``: the project's SQLite DB);
- wandb: the offline run directory (``run-*.wandb`` plus its logs);
- tensorboardX: the event file(s);
- MLflow: the SQLite DB plus the artifact directory.

Each tracker runs in its own Python process (a tracker's threads, imports
and environment never touch another's), with the same rows (fixed, random
floats: the worst case for formatting), best of ``--repeat`` runs; a
tracker whose runs have taken 30 s stops repeating. A tracker that is not
installed is reported as "not installed".

    python python/bench/bench_peers.py                  # all; a markdown table on stdout
    python python/bench/bench_peers.py --only loupe wandb --calls 5000
    LOUPE_BIN=/path/to/loupe python python/bench/bench_peers.py --json out.json

Install the peers with ``pip install trackio wandb tensorboardX mlflow``.
"""

from __future__ import annotations

import argparse
import gc
import glob
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Callable, Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_log  # noqa: E402  (the rows, the server, dir_bytes; it puts the checkout's SDK on the path)
from bench_log import KEYS, dir_bytes, make_rows  # noqa: E402

# (name in the table, module that must be importable, what it is)
TRACKERS = [
    ("loupe", "loupe", "Loupe SDK → `loupe serve` on loopback"),
    ("trackio", "trackio", "trackio, local SQLite"),
    ("wandb", "wandb", "wandb, mode=offline"),
    ("tensorboardX", "tensorboardX", "tensorboardX SummaryWriter, 5 × add_scalar"),
    ("mlflow", "mlflow", "MLflow, SQLite tracking store, log_metrics"),
]

REPEAT_BUDGET_S = 30.0


def timed_loop(log_one: Callable[[Dict[str, float], int], None], rows: List[Dict[str, float]]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    for i, row in enumerate(rows):
        log_one(row, i)
    return time.perf_counter() - t0


# --- one function per tracker: (rows, workdir) -> results ----------------------------


def loupe_data_bytes(data_dir: str) -> int:
    """The bytes a stopped server's data directory holds: its files, with the
    SQLite catalog counted by its pages (a write-ahead log left beside it,
    or not, by the last checkpoint would otherwise swing the figure by more
    than a run's metrics take)."""
    import sqlite3

    total = 0
    for root, _dirs, files in os.walk(data_dir):
        for f in files:
            if not f.startswith("meta.sqlite"):
                total += os.path.getsize(os.path.join(root, f))
    db = os.path.join(data_dir, "meta.sqlite")
    if os.path.exists(db):
        c = sqlite3.connect(db)
        try:
            total += c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]
        finally:
            c.close()
    return total


def run_loupe(rows, work):
    import logging

    import loupe

    logging.getLogger("loupe").setLevel(logging.ERROR)
    data_dir = os.path.join(work, "loupe-data")
    # The directory a server leaves after starting and stopping with no data
    # (its SQLite catalog, the manifest): what the run's data is added to.
    bench_log.Server(data_dir).stop()
    base = loupe_data_bytes(data_dir)
    srv = bench_log.Server(data_dir)
    try:
        run = loupe.init(project="bench", name="bench-peers", config={"calls": len(rows)}, server=srv.url,
                         dir=os.path.join(work, "loupe-run"), capture_console=False)
        log = run.log
        c0 = time.process_time()
        loop_s = timed_loop(lambda row, i: log(row, step=i), rows)
        t = time.perf_counter()
        run.finish()
        finish_s = time.perf_counter() - t
        # Every thread of this process from the first log() to the end of
        # finish(): the SDK's whole cost to the training process.
        cpu_s = time.process_time() - c0
        with urllib.request.urlopen("%s/api/v1/runs/%s/series?limit=10000" % (srv.url, run.id)) as r:
            stored = sum(s["count"] for s in json.load(r)["series"])
    finally:
        srv.stop()  # flushes the head into a segment
    return {"loop_s": loop_s, "finish_s": finish_s, "bytes": loupe_data_bytes(data_dir) - base,
            "points_stored": stored, "cpu_us_per_call": cpu_s / len(rows) * 1e6}


def run_trackio(rows, work):
    # trackio reads TRACKIO_DIR when it is imported: the worker sets it first.
    import trackio

    trackio.init(project="bench", name="bench-peers", config={"calls": len(rows)}, auto_log_gpu=False,
                 auto_log_cpu=False, embed=False)
    log = trackio.log
    loop_s = timed_loop(lambda row, i: log(row, step=i), rows)
    t = time.perf_counter()
    trackio.finish()
    finish_s = time.perf_counter() - t
    return {"loop_s": loop_s, "finish_s": finish_s, "bytes": dir_bytes(os.environ["TRACKIO_DIR"])}


def run_wandb(rows, work):
    import wandb

    settings = {"console": "off"}
    try:
        # Loupe samples no system metrics in this benchmark: neither does wandb.
        s = wandb.Settings(x_disable_stats=True, **settings)
    except Exception:
        s = wandb.Settings(**settings)
    run = wandb.init(project="bench", name="bench-peers", mode="offline", dir=work, config={"calls": len(rows)},
                     settings=s)
    log = run.log
    loop_s = timed_loop(lambda row, i: log(row, step=i), rows)
    t = time.perf_counter()
    run.finish()
    finish_s = time.perf_counter() - t
    run_dirs = glob.glob(os.path.join(work, "wandb", "offline-run-*"))
    return {"loop_s": loop_s, "finish_s": finish_s, "bytes": sum(dir_bytes(d) for d in run_dirs)}


def run_tensorboardx(rows, work):
    from tensorboardX import SummaryWriter

    logdir = os.path.join(work, "tb")
    w = SummaryWriter(logdir)
    add = w.add_scalar

    def log_one(row, i):
        for k, v in row.items():
            add(k, v, i)

    loop_s = timed_loop(log_one, rows)
    t = time.perf_counter()
    w.close()
    finish_s = time.perf_counter() - t
    return {"loop_s": loop_s, "finish_s": finish_s, "bytes": dir_bytes(logdir)}


def run_mlflow(rows, work):
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    db = os.path.join(work, "mlflow.db")
    artifacts = os.path.join(work, "mlartifacts")
    mlflow.set_tracking_uri("sqlite:///" + db)
    exp = mlflow.create_experiment("bench", artifact_location="file://" + artifacts)
    mlflow.start_run(experiment_id=exp, run_name="bench-peers")
    mlflow.log_params({"calls": len(rows)})
    log_metrics = mlflow.log_metrics
    loop_s = timed_loop(lambda row, i: log_metrics(row, step=i), rows)
    t = time.perf_counter()
    mlflow.end_run()
    finish_s = time.perf_counter() - t
    db_files = [db] + glob.glob(db + "-*")  # the DB and its journal or WAL, if any is left
    return {"loop_s": loop_s, "finish_s": finish_s,
            "bytes": sum(os.path.getsize(f) for f in db_files) + dir_bytes(artifacts)}


RUNNERS = {"loupe": run_loupe, "trackio": run_trackio, "wandb": run_wandb, "tensorboardX": run_tensorboardx,
           "mlflow": run_mlflow}


def worker(name: str, calls: int, repeat: int, out_path: str) -> int:
    """Runs one tracker ``repeat`` times (fresh directories each time) in this
    process and writes the best run's figures to ``out_path``."""
    rows = make_rows(calls)
    points = calls * len(KEYS)
    best = None
    spent = 0.0
    runs = 0
    base = tempfile.mkdtemp(prefix="loupe-peers-%s-" % name)
    # trackio reads TRACKIO_DIR once, when imported: one per process,
    # emptied between runs.
    os.environ["TRACKIO_DIR"] = os.path.join(base, "trackio")
    try:
        for k in range(repeat):
            work = os.path.join(base, "run-%d" % k)
            os.makedirs(work)
            t = time.perf_counter()
            r = RUNNERS[name](rows, work)
            spent += time.perf_counter() - t
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(os.environ["TRACKIO_DIR"], ignore_errors=True)
            runs += 1
            r["us_per_call"] = r["loop_s"] / calls * 1e6
            r["bytes_per_point"] = r["bytes"] / points
            if best is None or r["us_per_call"] < best["us_per_call"]:
                best = r
            if spent > REPEAT_BUDGET_S:
                break
    finally:
        shutil.rmtree(base, ignore_errors=True)
    best.update(status="ok", runs=runs, points=points)
    with open(out_path, "w") as f:
        json.dump(best, f)
    return 0


# --- the driver ----------------------------------------------------------------------


def measure(name: str, module: str, calls: int, repeat: int) -> dict:
    if importlib.util.find_spec(module) is None:
        return {"status": "not installed"}
    fd, out_path = tempfile.mkstemp(prefix="loupe-peers-", suffix=".json")
    os.close(fd)
    env = dict(os.environ)
    env.update(WANDB_SILENT="true", WANDB_MODE="offline", WANDB_DISABLE_GIT="true")
    try:
        p = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", name, "--calls", str(calls),
             "--repeat", str(repeat), "--out", out_path],
            env=env, capture_output=True, text=True, timeout=3600,
        )
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
            return {"status": "failed", "error": " | ".join(tail)}
        with open(out_path) as f:
            return json.load(f)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": "timed out"}
    finally:
        os.unlink(out_path)


def fmt_us(x: float) -> str:
    return "%.2f" % x if x < 10 else "%.0f" % x if x >= 100 else "%.1f" % x


def fmt_s(x: float) -> str:
    return "%.3f s" % x if x < 10 else "%.1f s" % x


def table(results: Dict[str, dict], calls: int) -> str:
    ref = results.get("loupe", {})
    ref_us = ref.get("us_per_call") if ref.get("status") == "ok" else None
    lines = [
        "| tracker | µs per log() (5 scalars, %d calls) | × Loupe | finish() for %d points | bytes/point on disk |"
        % (calls, calls * len(KEYS)),
        "|---|---|---|---|---|",
    ]
    for name, _module, what in TRACKERS:
        r = results.get(name)
        if r is None:
            continue
        if r["status"] != "ok":
            msg = r["status"] + (": " + r["error"] if r.get("error") else "")
            lines.append("| %s (%s) | %s | | | |" % (name, what, msg))
            continue
        ratio = "%.1f×" % (r["us_per_call"] / ref_us) if ref_us else "—"
        if name == "loupe":
            ratio = "1×"
        lines.append("| %s (%s) | %s | %s | %s | %.1f |" % (
            name, what, fmt_us(r["us_per_call"]), ratio, fmt_s(r["finish_s"]), r["bytes_per_point"]))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--repeat", type=int, default=3, help="runs per tracker, best reported (stops after 30 s)")
    p.add_argument("--only", nargs="*", default=None, help="trackers to run (default: all)")
    p.add_argument("--json", default="", help="also write the results here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args.calls, args.repeat, args.out)
    results: Dict[str, dict] = {}
    for name, module, _what in TRACKERS:
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        results[name] = measure(name, module, args.calls, args.repeat)
        r = results[name]
        # Other processes on the machine slow every tracker: say how busy it was.
        r["load_after"] = os.getloadavg()[0]
        if r["status"] == "ok":
            print("%-13s %8s µs/call  finish %s  %.1f B/point  (best of %d, %.0f s; load average %.1f)" % (
                name, fmt_us(r["us_per_call"]), fmt_s(r["finish_s"]), r["bytes_per_point"], r["runs"],
                time.perf_counter() - t, r["load_after"]), file=sys.stderr)
            if "cpu_us_per_call" in r:
                print("%-13s %8.2f µs of CPU per call, all the SDK's threads and finish() included"
                      % ("", r["cpu_us_per_call"]), file=sys.stderr)
        else:
            print("%-13s %s %s" % (name, r["status"], r.get("error", "")), file=sys.stderr)
    ok = results.get("loupe", {})
    if ok.get("status") == "ok" and ok.get("points_stored") != ok.get("points"):
        print("warning: Loupe stored %s of %s points" % (ok.get("points_stored"), ok.get("points")), file=sys.stderr)
    print(table(results, args.calls))
    loads = [r["load_after"] for r in results.values()]
    print("\nCPython %s, %d CPUs, load average %.1f–%.1f while it ran; best of %d runs per tracker."
          % (sys.version.split()[0], os.cpu_count() or 0, min(loads), max(loads), args.repeat))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"calls": args.calls, "python": sys.version.split()[0], "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
