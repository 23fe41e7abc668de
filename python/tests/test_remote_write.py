"""Debian's real Prometheus scrapes a real ``prometheus_client`` exporter and
forwards what it scrapes to ``loupe serve`` with an ordinary
``remote_write`` block. Every series Prometheus stored, and every sample of
it, must be in Loupe — names, labels, timestamps and values exactly — and
the exporter going away must reach Loupe as Prometheus' staleness markers.
Prometheus' own TSDB, read through its HTTP API, is the reference."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import free_port

prometheus_client = pytest.importorskip("prometheus_client")

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus package is not installed")


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def wait_for(what: str, check, timeout: float = 30.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class Exporter:
    """A real prometheus_client exporter whose values move while it runs."""

    def __init__(self):
        reg = prometheus_client.CollectorRegistry()
        self.requests = prometheus_client.Counter("app_requests", "Requests served", ["route"], registry=reg)
        self.queue = prometheus_client.Gauge("app_queue_depth", "Requests waiting", registry=reg)
        self.latency = prometheus_client.Histogram(
            "app_latency_seconds", "Request latency", buckets=(0.01, 0.1, 1.0), registry=reg
        )
        self.size = prometheus_client.Summary("app_request_bytes", "Request size", registry=reg)
        self.port = free_port()
        self.server, self.thread = prometheus_client.start_http_server(self.port, addr="127.0.0.1", registry=reg)
        self.stop = threading.Event()
        self.mover = threading.Thread(target=self._move, daemon=True)
        self.mover.start()

    def _move(self):
        i = 0
        while not self.stop.is_set():
            i += 1
            self.requests.labels(route="/a").inc()
            self.requests.labels(route="/b").inc(2.5)
            self.queue.set(i % 7 - 3)
            self.latency.observe((i % 10) / 20)
            self.size.observe(100 + i)
            time.sleep(0.1)

    def close(self):
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus(tmp_path):
    """Starts Debian's Prometheus with a config; yields (url, process)."""
    procs = []

    def start(config: str):
        port = free_port()
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(config)
        log = open(tmp_path / "prometheus.log", "wb")
        p = subprocess.Popen(
            [
                PROMETHEUS,
                "--config.file=%s" % cfg,
                "--storage.tsdb.path=%s" % (tmp_path / "prom-data"),
                "--web.listen-address=127.0.0.1:%d" % port,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(p)
        url = "http://127.0.0.1:%d" % port

        def ready():
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for("Prometheus to be ready", ready)
        return url

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def prometheus_samples(url: str, selector: str, at: float):
    """Every raw sample Prometheus holds for the selector over the last 10
    minutes before `at`: {(name, labels…): [(ms, value)]}."""
    q = urllib.parse.urlencode({"query": "%s[10m]" % selector, "time": "%.3f" % at})
    body = get_json("%s/api/v1/query?%s" % (url, q))
    assert body["status"] == "success", body
    out = {}
    for s in body["data"]["result"]:
        labels = dict(s["metric"])
        name = labels.pop("__name__")
        key = (name,) + tuple(sorted(labels.items()))
        out[key] = [(round(float(t) * 1000), float(v)) for t, v in s["values"]]
    return out


def as_loupe_keeps_it(key):
    """A Prometheus series key with its `project` label as `exported_project`."""
    labels = [("exported_project", v) if k == "project" else (k, v) for k, v in key[1:]]
    return (key[0],) + tuple(sorted(labels))


def loupe_series(server, project: str):
    body = get_json("%s/api/v1/metrics/series?project=%s&limit=10000" % (server.url, project))
    return {(s["name"],) + tuple(sorted(s["labels"].items())): s for s in body["series"]}


def loupe_points(server, project: str, key):
    """Every raw point of one series: [(ms, value)], NaN kept."""
    name, labels = key[0], key[1:]
    q = {"project": project, "name": name, "limit": 100000}
    q.update({"label.%s" % k: v for k, v in labels})
    body = get_json("%s/api/v1/metrics/data?%s" % (server.url, urllib.parse.urlencode(q)))
    # Non-finite values come as "NaN", "Infinity", "-Infinity": float() reads them.
    return [(t // 1_000_000, float(v)) for t, v in zip(body["time_ns"], body["y"])]


def test_prometheus_remote_writes_what_it_scrapes_and_loupe_agrees_point_for_point(own_server, prometheus):
    loupe = own_server.start()
    exporter = Exporter()
    try:
        prom = prometheus(
            """
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ["127.0.0.1:%d"]
        labels: {env: "test", project: "theirs"}
remote_write:
  - url: "%s/api/v1/write?project=prom"
    queue_config:
      batch_send_deadline: 500ms
      max_samples_per_send: 200
"""
            % (exporter.port, loupe.url)
        )
        selector = '{job="app"}'
        # A few scrapes of every series.
        def scraped_five_times():
            up = prometheus_samples(prom, 'up{job="app"}', time.time())
            return len(up) == 1 and len(next(iter(up.values()))) >= 5

        wait_for("five scrapes in Prometheus", scraped_five_times)
        at = time.time()
        # Loupe keeps a series' own `project` label as `exported_project`
        # (its `project` is the one the write names).
        reference = {as_loupe_keeps_it(k): pts for k, pts in prometheus_samples(prom, selector, at).items()}
        names = {k[0] for k in reference}
        # Every kind of series the exporter has, as Prometheus names them.
        for n in ("app_requests_total", "app_requests_created", "app_queue_depth", "app_latency_seconds_bucket",
                  "app_latency_seconds_sum", "app_latency_seconds_count", "app_request_bytes_sum",
                  "app_request_bytes_count", "up", "scrape_duration_seconds"):
            assert n in names, (n, sorted(names))

        def all_there():
            got = loupe_series(loupe, "prom")
            return all(k in got and got[k]["last_time"] * 1000 >= pts[-1][0] - 0.5 for k, pts in reference.items())

        wait_for("every sample in Loupe", all_there)
        stored = loupe_series(loupe, "prom")
        cutoff = max(p[-1][0] for p in reference.values())
        for key, ref in reference.items():
            got = [p for p in loupe_points(loupe, "prom", key) if p[0] <= cutoff and not math.isnan(p[1])]
            assert got == ref, key
        # The target's `project` label is kept under Prometheus' own rule
        # for clashing labels; Loupe's `project` is the one asked for.
        up = [k for k in stored if k[0] == "up"]
        assert up == [("up", ("env", "test"), ("exported_project", "theirs"), ("instance", "127.0.0.1:%d" % exporter.port), ("job", "app"))]
        # Nothing in another project.
        assert loupe_series(loupe, "default") == {}

        # The exporter goes away: Prometheus marks its series stale and
        # forwards the markers; `up` becomes 0.
        exporter.close()
        queue = ("app_queue_depth", ("env", "test"), ("exported_project", "theirs"),
                 ("instance", "127.0.0.1:%d" % exporter.port), ("job", "app"))
        wait_for("a staleness marker in Loupe", lambda: any(math.isnan(v) for _, v in loupe_points(loupe, "prom", queue)))
        wait_for("up = 0 in Loupe", lambda: loupe_points(loupe, "prom", up[0])[-1][1] == 0.0)
    finally:
        if not exporter.stop.is_set():
            exporter.close()
