"""The Grafana dashboard in deploy/grafana evaluates against Loupe: every
panel's PromQL, with Grafana's ``$__rate_interval`` filled in as Grafana
would, runs through the query API on demo-like data (the agent's GPU
series, DCGM exporter series, and a training run's metrics) and answers
data, not an error. Training series are read by run name, as the
dashboard's legends show them."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request

from conftest import REPO

DASHBOARD = os.path.join(REPO, "deploy", "grafana", "dashboard.json")
PROJECT = "fleet"


def post(url, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def expressions():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


def write_demo_data(url, now):
    times = [now - 3600 + 15 * i for i in range(240)]
    series = []
    for host in ("n1", "n2"):
        for gpu in ("0", "1"):
            base = {"host": host, "gpu": gpu, "uuid": "GPU-%s-%s" % (host, gpu), "name": "H100"}
            for name, value in (
                ("gpu.utilization.gpu_percent", 90.0),
                ("gpu.memory.used_bytes", 6e10),
                ("gpu.memory.total_bytes", 8e10),
                ("gpu.temperature_celsius", 70.0),
                ("gpu.power.usage_watts", 600.0),
                ("gpu.power.limit_watts", 700.0),
            ):
                series.append({"name": name, "labels": base, "time": times,
                               "value": [value + (i % 7) for i in range(len(times))]})
            series.append({"name": "gpu.xid", "labels": dict(base, xid="79"),
                           "time": times[-3:], "value": [79.0] * 3})
            dcgm = {"Hostname": host, "gpu": gpu, "UUID": "GPU-%s-%s" % (host, gpu)}
            for name, value in (
                ("DCGM_FI_DEV_GPU_UTIL", 88.0),
                ("DCGM_FI_DEV_FB_USED", 60000.0),
                ("DCGM_FI_DEV_FB_FREE", 20000.0),
                ("DCGM_FI_DEV_GPU_TEMP", 68.0),
                ("DCGM_FI_DEV_POWER_USAGE", 590.0),
            ):
                series.append({"name": name, "labels": dcgm, "time": times,
                               "value": [value + (i % 5) for i in range(len(times))]})
            series.append({"name": "DCGM_FI_DEV_XID_ERRORS", "labels": dcgm, "time": times,
                           "value": [0.0] * (len(times) - 5) + [79.0] * 5})
    post(url, "/api/v1/metrics?project=" + PROJECT, {"series": series})
    for name in ("llama-7b", "llama-13b"):
        run = post(url, "/api/v1/runs", {"project": PROJECT, "name": name})
        steps = list(range(len(times)))
        post(url, "/api/v1/runs/%s/metrics" % run["id"], {"series": [
            {"name": "train/loss", "step": steps, "time": times, "value": [3.0 / (1 + s / 50) for s in steps]},
            {"name": "train/lr", "step": steps, "time": times, "value": [3e-4] * len(steps)},
            {"name": "train/grad_norm", "step": steps, "time": times, "value": [1.0 + (s % 3) for s in steps]},
            {"name": "perf/tokens_per_s", "step": steps, "time": times, "value": [12000.0] * len(steps)},
        ]})


def test_every_dashboard_query_evaluates_with_data(own_server):
    s = own_server.start()
    now = int(time.time())
    write_demo_data(s.url, now)
    exprs = expressions()
    assert len(exprs) >= 10
    failures = []
    for title, expr in exprs:
        # Grafana's own variable: max(4 × scrape interval, step + interval).
        q = expr.replace("$__rate_interval", "1m")
        form = urllib.parse.urlencode({"query": q, "start": now - 1800, "end": now, "step": 60,
                                       "project": PROJECT}).encode()
        req = urllib.request.Request(s.url + "/api/v1/query_range", data=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            failures.append("%s: %r: %s" % (title, expr, e.read().decode()))
            continue
        if body["status"] != "success" or not body["data"]["result"]:
            failures.append("%s: %r: no data (%s)" % (title, expr, body))
    assert not failures, "\n".join(failures)


def test_training_series_carry_run_name_and_project(own_server):
    s = own_server.start()
    now = int(time.time())
    write_demo_data(s.url, now)
    url = "%s/api/v1/query?%s" % (s.url, urllib.parse.urlencode(
        {"query": '{__name__="train/loss", run_name="llama-7b"}', "time": now, "project": PROJECT}))
    with urllib.request.urlopen(url, timeout=30) as r:
        result = json.load(r)["data"]["result"]
    assert len(result) == 1
    metric = result[0]["metric"]
    assert metric["__name__"] == "train/loss" and metric["project"] == PROJECT and metric["run"]
    # The last point, logged at `now`, is the one an instant query at `now` reads.
    assert float(result[0]["value"][1]) == 3.0 / (1 + 239 / 50)
