#!/usr/bin/env python3
"""OTLP/HTTP protobuf metrics ingest into the real `loupe serve`: points/s
with durable acknowledgements (issue 15's target: >= 500k points/s).

Bodies are `ExportMetricsServiceRequest`s built with the OpenTelemetry
project's own protobuf types (PyPI `opentelemetry-proto`, which the
exporters use), shaped as an SDK sends them: one resource (service, host,
instance and the SDK's attributes), SERIES gauge series (attributes `gpu`
and `metric`) of POINTS points each, distinct times in every request. They
are built before the clock starts; CLIENTS threads then POST them over
keep-alive connections on 127.0.0.1 and the wall time until the last
acknowledgement is measured. Every answer must be `200` with an empty body
(no partial success), and the stored series count is checked afterwards.

    cargo build --release -p loupe
    python3 bench/otlp.py [--series 1000] [--points 10] [--requests 300] [--clients 4] [--gzip]

Prints the figures and one JSON line.
"""

import argparse
import gzip
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

from overhead_common import default_binary, start_server, ticks

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

T0_NS = 1_764_000_000 * 10**9


def kv(k, v):
    return KeyValue(key=k, value=AnyValue(string_value=v))


def body(series, points, request_index):
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in [("service.name", "bench"), ("host.name", "node-1"), ("service.instance.id", "bench-0"),
                 ("telemetry.sdk.language", "python"), ("telemetry.sdk.version", "1.0")]:
        rm.resource.attributes.append(kv(k, v))
    sm = rm.scope_metrics.add()
    sm.scope.name = "bench"
    per_metric = 8  # series per metric name: eight GPUs
    for m in range(series // per_metric):
        metric = sm.metrics.add()
        metric.name = "gpu.metric_%03d" % m
        for g in range(per_metric):
            for p in range(points):
                dp = metric.gauge.data_points.add()
                dp.time_unix_nano = T0_NS + (request_index * points + p) * 10**9
                dp.as_double = (m * 31 + g * 7 + p) * 0.5
                dp.attributes.append(kv("gpu", str(g)))
    return req.SerializeToString()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loupe", default=default_binary())
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--points", type=int, default=10, help="points per series per request")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--gzip", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(a.loupe):
        sys.exit(f"{a.loupe} not found: cargo build --release -p loupe")
    series = a.series // 8 * 8
    t = time.time()
    bodies = [body(series, a.points, i) for i in range(a.requests)]
    if a.gzip:
        bodies = [gzip.compress(b, 1) for b in bodies]
    prep = time.time() - t
    points_per_request = series * a.points

    data = tempfile.mkdtemp(prefix="loupe-bench-otlp-")
    proc, base = start_server(a.loupe, os.path.join(data, "data"))
    host, port = base.removeprefix("http://").rsplit(":", 1)
    errors = []
    headers = {"content-type": "application/x-protobuf"}
    if a.gzip:
        headers["content-encoding"] = "gzip"

    def client(k):
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        for i in range(k, a.requests, a.clients):
            conn.request("POST", "/v1/metrics?project=bench", bodies[i], headers)
            r = conn.getresponse()
            answer = r.read()
            if r.status != 200 or answer:
                errors.append((r.status, answer[:200]))
                return
        conn.close()

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        hz = os.sysconf("SC_CLK_TCK")
        cpu0 = ticks(proc.pid)
        t = time.time()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        took = time.time() - t
        server_cpu = (ticks(proc.pid) - cpu0) / hz
        if errors:
            sys.exit("refused: %r" % errors[:3])
        with urllib.request.urlopen(base + "/api/v1/metrics/series?project=bench&limit=10000", timeout=30) as r:
            stored = len(json.load(r)["series"])
        if stored != series:
            sys.exit(f"{stored} series stored, {series} expected")
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(data, ignore_errors=True)

    total = points_per_request * a.requests
    pps = total / took
    mb = sum(map(len, bodies)) / a.requests / 1e6
    print(f"OTLP/HTTP protobuf{' gzip' if a.gzip else ''}: {a.requests} requests of {series} series x {a.points} points "
          f"({mb:.2f} MB each), {a.clients} clients, bodies built in {prep:.1f} s")
    print(f"  {total} points in {took:.2f} s: {pps / 1e3:.0f}k points/s, {a.requests / took:.0f} requests/s")
    print(f"  server CPU {server_cpu:.2f} s: {total / max(server_cpu, 1e-9) / 1e3:.0f}k points per server CPU-second "
          f"(on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end)")
    verdict = "PASS" if pps >= 500_000 else "MISS"
    print(f"[{verdict}] OTLP ingest >= 500k points/s: {pps / 1e3:.0f}k")
    print(json.dumps({"bench": "otlp", "points_per_s": round(pps), "requests": a.requests, "series": series,
                      "points_per_series": a.points, "clients": a.clients, "gzip": a.gzip, "seconds": round(took, 3), "server_cpu_s": round(server_cpu, 3)}))


if __name__ == "__main__":
    main()
