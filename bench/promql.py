#!/usr/bin/env python3
"""PromQL query speed: Loupe against Prometheus on the same samples.

Writes N counter series (`bench_requests_total{job, instance}`) over H hours
at an interval of S seconds, backfills them into Debian's Prometheus with
`promtool tsdb create-blocks-from openmetrics` and into Loupe through its
ingest API, starts both on loopback ports, then times each query against
both in the same run, interleaved, several repetitions, and prints the
median of each and the ratio Loupe / Prometheus (below 1: Loupe faster).

    bench/promql.py --loupe-bin target/release/loupe            # 10k series, 24 h, 15 s
    bench/promql.py --series 2000 --hours 24 --reps 7           # smaller

Both answer the same queries through the same HTTP API, so the figures
include JSON encoding and decoding on both sides. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

JOBS = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def series_values(i: int, n: int):
    """A counter: a steady per-series rate with a wobble, reset once at 2/3."""
    rate = 1 + (i % 17)
    v, out = 0.0, []
    for k in range(n):
        v = 0.0 if k == (2 * n) // 3 and i % 5 == 0 else v + rate + (k * 7 + i) % 5
        out.append(v)
    return out


def labels(i: int):
    return {"job": "j%d" % (i % JOBS), "instance": "i%05d" % i}


def write_openmetrics(path, n_series, times):
    with open(path, "w") as f:
        for i in range(n_series):
            ls = labels(i)
            head = 'bench_requests_total{instance="%s",job="%s",project="default"} ' % (ls["instance"], ls["job"])
            f.write("".join("%s%r %d\n" % (head, v, t) for t, v in zip(times, series_values(i, len(times)))))
        f.write("# EOF\n")


def ingest_loupe(url, n_series, times, batch=20):
    for start in range(0, n_series, batch):
        body = {"series": [{"name": "bench_requests_total", "labels": labels(i), "time": times,
                            "value": series_values(i, len(times))}
                           for i in range(start, min(n_series, start + batch))]}
        req = urllib.request.Request(url + "/api/v1/metrics?project=default", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            assert r.status == 200


def wait_ready(url, path, deadline_s=120):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + path, timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("%s did not become ready" % url)


def timed(url, path, params):
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(url + path, data=data,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        body = json.load(r)
    dt = time.perf_counter() - t0
    if body.get("status") != "success":
        raise RuntimeError("%s %s: %s" % (url, params, body))
    return dt, len(body["data"]["result"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--interval", type=int, default=15, help="seconds between samples")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--loupe-bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "loupe"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "/usr/bin/prometheus")
    ap.add_argument("--promtool", default=shutil.which("promtool") or "/usr/bin/promtool")
    ap.add_argument("--dir", help="work directory (default: a temporary one, removed)")
    a = ap.parse_args()

    work = a.dir or tempfile.mkdtemp(prefix="promql-bench-")
    os.makedirs(work, exist_ok=True)
    now = int(time.time())
    end = (now // 3600) * 3600
    n = int(a.hours * 3600 // a.interval)
    start = end - n * a.interval
    times = [start + (k + 1) * a.interval for k in range(n)]
    print("data: %d series x %d samples (%.1f h at %d s) = %.1f M samples"
          % (a.series, n, a.hours, a.interval, a.series * n / 1e6), flush=True)

    procs = []
    try:
        t0 = time.monotonic()
        om = os.path.join(work, "data.om")
        write_openmetrics(om, a.series, times)
        subprocess.run([a.promtool, "tsdb", "create-blocks-from", "openmetrics", om, os.path.join(work, "prom")],
                       check=True, stdout=subprocess.DEVNULL)
        os.remove(om)
        print("prometheus backfill: %.0f s" % (time.monotonic() - t0), flush=True)
        cfg = os.path.join(work, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        pport, lport = free_port(), free_port()
        procs.append(subprocess.Popen(
            [a.prometheus, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(work, "prom"),
             "--storage.tsdb.retention.time=30d", "--web.listen-address=127.0.0.1:%d" % pport],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [a.loupe_bin, "serve", "--addr", "127.0.0.1:%d" % lport, "--data", os.path.join(work, "loupe"),
             "--no-diagnose"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        prom, loupe = "http://127.0.0.1:%d" % pport, "http://127.0.0.1:%d" % lport
        wait_ready(loupe, "/healthz")
        t0 = time.monotonic()
        ingest_loupe(loupe, a.series, times)
        print("loupe ingest: %.0f s" % (time.monotonic() - t0), flush=True)
        wait_ready(prom, "/-/ready")

        day = (end - 24 * 3600, end)
        queries = [
            ("rate(x[5m]) 24 h at 1 h", "/api/v1/query_range",
             {"query": "rate(bench_requests_total[5m])", "start": day[0], "end": day[1], "step": 3600}),
            ("sum by (job) (rate[5m]) 24 h at 1 h", "/api/v1/query_range",
             {"query": "sum by (job) (rate(bench_requests_total[5m]))", "start": day[0], "end": day[1], "step": 3600}),
            ("sum(increase[1h]) 24 h at 1 h", "/api/v1/query_range",
             {"query": "sum(increase(bench_requests_total[1h]))", "start": day[0], "end": day[1], "step": 3600}),
            ("sum(rate[5m]) last 1 h at 60 s", "/api/v1/query_range",
             {"query": "sum(rate(bench_requests_total[5m]))", "start": end - 3600, "end": end, "step": 60}),
            ("topk(10, rate[5m]) instant", "/api/v1/query",
             {"query": "topk(10, rate(bench_requests_total[5m]))", "time": end}),
            ("max_over_time(x[1h]) by job instant", "/api/v1/query",
             {"query": "max by (job) (max_over_time(bench_requests_total[1h]))", "time": end}),
        ]
        print("\n| query | Prometheus 2.42 (median, s) | Loupe (median, s) | Loupe / Prometheus | series |")
        print("|---|---|---|---|---|")
        for name, path, params in queries:
            # One warm-up each: both read from the page cache afterwards.
            _, np = timed(prom, path, params)
            _, nl = timed(loupe, path, dict(params, project="default"))
            if np != nl:
                raise RuntimeError("%s: %d series from prometheus, %d from loupe" % (name, np, nl))
            tp, tl = [], []
            for _ in range(a.reps):
                tp.append(timed(prom, path, params)[0])
                tl.append(timed(loupe, path, dict(params, project="default"))[0])
            mp, ml = statistics.median(tp), statistics.median(tl)
            print("| `%s` | %.4f | %.4f | %.2f | %d |" % (name, mp, ml, ml / mp, nl), flush=True)
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
