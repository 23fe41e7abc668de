"""Loupe scrapes a real ``prometheus_client`` exporter, and so does Debian's
real Prometheus, with the same scrape config file: the two stores must hold
the same series (names and labels, report series included) and, for the
exporter's series, the same points. The exporter stamps its samples with
explicit timestamps (2-second buckets, scraped every second), so both
scrapers store the same (time, value) pairs however their scrape times
fall; ``honor_timestamps`` is Prometheus' default."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from conftest import free_port

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.core import (  # noqa: E402
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
BUCKET_S = 2


class StampedCollector:
    """Every family a function of the current 2-second bucket, stamped with
    the bucket's time: a counter, a gauge (with a NaN now and then), a
    histogram and a summary, with an escaped label value."""

    def collect(self):
        b = int(time.time() // BUCKET_S) * BUCKET_S
        k = b // BUCKET_S
        c = CounterMetricFamily("jobs_done", "Jobs done.", labels=["queue"])
        c.add_metric(["fast"], float(k), timestamp=b)
        c.add_metric(['slow "q"\\x'], k * 0.5, timestamp=b)
        yield c
        g = GaugeMetricFamily("gpu_temp_celsius", "GPU temperature.", labels=["gpu"])
        g.add_metric(["0"], 60 + (k % 7) / 3, timestamp=b)
        g.add_metric(["1"], float("nan") if k % 3 == 0 else k % 11 * 1e-3, timestamp=b)
        yield g
        h = HistogramMetricFamily("step_seconds", "Step time.", labels=[])
        h.add_metric([], buckets=[("0.1", k % 5), ("1.0", k % 5 + 2), ("+Inf", k % 5 + 3)], sum_value=k * 0.25, timestamp=b)
        yield h
        s = SummaryMetricFamily("batch_tokens", "Tokens a batch.", labels=[])
        s.add_metric([], count_value=k, sum_value=k * 512.0, timestamp=b)
        yield s


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def wait_ready(url, deadline_s=30):
    end = time.monotonic() + deadline_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def prometheus_series(port):
    """Every series of job `py` with its raw samples: {(name, labels): [(ms, value)]}."""
    q = urllib.parse.urlencode({"query": '{job="py"}[10m]'})
    d = get_json("http://127.0.0.1:%d/api/v1/query?%s" % (port, q))
    assert d["status"] == "success", d
    out = {}
    for r in d["data"]["result"]:
        labels = dict(r["metric"])
        name = labels.pop("__name__")
        out[(name, tuple(sorted(labels.items())))] = [(round(float(t) * 1000), float(v)) for t, v in r["values"]]
    return out


def loupe_series(server):
    d = get_json("%s/api/v1/metrics/series?project=default" % server.url)
    out = {}
    for s in d["series"]:
        labels = {k: v for k, v in (s.get("labels") or {}).items() if k != "project"}
        if labels.get("job") != "py":
            continue
        q = {"project": "default", "name": s["name"], "limit": "100000"}
        q.update({"label.%s" % k: v for k, v in labels.items()})
        p = get_json("%s/api/v1/metrics/data?%s" % (server.url, urllib.parse.urlencode(q)))
        values = [float(v) if not isinstance(v, str) else float(v.replace("Infinity", "inf")) for v in p["y"]]
        out[(s["name"], tuple(sorted(labels.items())))] = [(t // 1_000_000, v) for t, v in zip(p["time_ns"], values)]
    return out


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.skipif(not os.path.exists(PROMETHEUS), reason="Debian's prometheus is not installed")
def test_loupe_and_prometheus_scrape_the_same_points(own_server, tmp_path):
    registry = CollectorRegistry()
    registry.register(StampedCollector())
    exporter_port = free_port()
    server, thread = prometheus_client.start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1m\n"
        "rule_files: []\n"
        "scrape_configs:\n"
        "  - job_name: py\n"
        "    static_configs:\n"
        "      - targets: ['127.0.0.1:%d']\n"
        "        labels: {rack: r1}\n" % exporter_port
    )
    prom_port = free_port()
    prom = subprocess.Popen(
        [PROMETHEUS, "--config.file=%s" % config, "--storage.tsdb.path=%s" % (tmp_path / "prom"),
         "--web.listen-address=127.0.0.1:%d" % prom_port, "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        own_server.extra_args = ["--scrape-config", str(config)]
        s = own_server.start()
        wait_ready("http://127.0.0.1:%d/-/ready" % prom_port)
        # A few buckets scraped by both.
        time.sleep(4 * BUCKET_S + 1)
        p = prometheus_series(prom_port)
        l = loupe_series(s)
    finally:
        prom.terminate()
        prom.wait(20)
        server.shutdown()

    # The same series, names and labels: the exporter's (histogram and
    # summary as their _bucket/_sum/_count, counters as _total, plus the
    # OpenMetrics _created series) and the five report series.
    assert set(p) == set(l), (sorted(set(p) - set(l)), sorted(set(l) - set(p)))
    names = {k[0] for k in p}
    for n in ("up", "scrape_duration_seconds", "scrape_samples_scraped",
              "scrape_samples_post_metric_relabeling", "scrape_series_added",
              "jobs_done_total", "step_seconds_bucket", "step_seconds_sum", "step_seconds_count",
              "batch_tokens_count", "batch_tokens_sum", "gpu_temp_celsius"):
        assert n in names, (n, sorted(names))
    assert (("instance", "127.0.0.1:%d" % exporter_port), ("job", "py"), ("queue", 'slow "q"\\x'), ("rack", "r1")) in {k[1] for k in p}

    # Point for point on the buckets both saw whole (the first and last
    # bucket may have been caught by one scraper only).
    compared = 0
    for key, pp in p.items():
        if key[0] in ("up", "scrape_duration_seconds", "scrape_samples_scraped",
                      "scrape_samples_post_metric_relabeling", "scrape_series_added"):
            continue
        lp = l[key]
        lo = max(pp[0][0], lp[0][0])
        hi = min(pp[-1][0], lp[-1][0])
        a = [x for x in pp if lo <= x[0] <= hi]
        b = [x for x in lp if lo <= x[0] <= hi]
        assert len(a) >= 2, (key, pp, lp)
        assert [t for t, _ in a] == [t for t, _ in b], (key, a, b)
        assert all(same(x[1], y[1]) for x, y in zip(a, b)), (key, a, b)
        compared += len(a)
    # 11 exporter series, at least two common buckets each.
    assert compared >= 22
    # `up` is 1 in both.
    up = [k for k in p if k[0] == "up"][0]
    assert {v for _, v in p[up]} == {1.0} and {v for _, v in l[up]} == {1.0}
