"""Loupe's PromQL against the real Prometheus (Debian's ``prometheus`` and
``promtool``), on the same samples.

A data set of every kind the engine must handle (counters with resets,
gauges with gaps, classic histograms, an info metric, series that end) is
written as OpenMetrics and backfilled into Prometheus with ``promtool tsdb
create-blocks-from openmetrics``, and written into Loupe through its ingest
API. Every query of ``promql_queries.txt`` then runs against both, as
instant queries at several times and as range queries; the answers must
agree. The test fails listing each query that differs. ``promtool query``
pointed at Loupe is checked too."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import Server, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
QUERIES = os.path.join(HERE, "promql_queries.txt")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
STEP_S = 15
HOURS = 3
# Loupe labels every series outside runs with its project; the Prometheus
# copy carries the same label so that both answer the same label sets.
PROJECT = "default"
REL_TOL = 1e-9

pytestmark = pytest.mark.skipif(
    not (os.path.exists(PROMETHEUS) and os.path.exists(PROMTOOL)),
    reason="needs Debian's prometheus and promtool",
)


def make_dataset(t_start: int):
    """{(name, labels tuple): [(t_ms, value)]}, deterministic."""
    rng = random.Random(15)
    n = HOURS * 3600 // STEP_S
    data = {}

    def grid(phase_s=None):
        phase = rng.randrange(0, STEP_S) if phase_s is None else phase_s
        return [(t_start + phase + i * STEP_S) * 1000 for i in range(n)]

    def add(name, labels, points):
        labels = dict(labels, project=PROJECT)
        data[(name, tuple(sorted(labels.items())))] = points

    for job in ("api", "web"):
        for inst in ("i0", "i1", "i2", "i3"):
            for method in ("GET", "POST"):
                for code in ("200", "500"):
                    v, pts = rng.uniform(0, 1000), []
                    reset_at = rng.randrange(n) if rng.random() < 0.4 else -1
                    for i, t in enumerate(grid()):
                        v = rng.uniform(0, 3) if i == reset_at else v + round(rng.expovariate(0.2), 3)
                        pts.append((t, round(v, 3)))
                    add("http_requests_total", {"job": job, "instance": inst, "method": method, "code": code}, pts)
    for k in range(8):
        inst = "i%d" % k
        temp, load, pts, lpts = rng.uniform(35, 65), rng.uniform(0, 4), [], []
        gap = (rng.randrange(n // 2), 80) if k in (2, 5) else (-1, 0)
        for i, t in enumerate(grid()):
            temp += rng.gauss(0, 0.7)
            load = abs(load + rng.gauss(0, 0.3))
            if gap[0] <= i < gap[0] + gap[1]:
                continue  # a 20-minute hole: lookback and windows see nothing
            pts.append((t, round(temp, 2)))
            lpts.append((t, round(load, 3)))
        add("node_temperature_celsius", {"instance": inst}, pts)
        add("node_load1", {"instance": inst}, lpts)
        add("machine_info", {"instance": inst, "rack": "r%d" % (k % 3)}, [(t, 1.0) for t in grid(0)])
    for inst in ("i0", "i1", "i2", "i3"):
        for kind in ("used", "free"):
            v, pts = rng.uniform(1e9, 6e10), []
            for t in grid():
                v = max(1e8, v + rng.gauss(0, 5e8))
                pts.append((t, float(int(v))))
            add("memory_bytes", {"instance": inst, "kind": kind}, pts)
    bounds = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"]
    for job in ("api", "web"):
        for inst in ("i0", "i1"):
            counts = [0.0] * len(bounds)
            series = [[] for _ in bounds]
            for t in grid():
                for _ in range(rng.randrange(0, 12)):
                    d = rng.lognormvariate(-2, 1)
                    for b, le in enumerate(bounds):
                        if le == "+Inf" or d <= float(le):
                            counts[b] += 1
                for b in range(len(bounds)):
                    series[b].append((t, counts[b]))
            for b, le in enumerate(bounds):
                add("request_duration_seconds_bucket", {"job": job, "instance": inst, "le": le}, series[b])
    ends = t_start + 90 * 60
    for q in ("q0", "q1", "q2"):
        add("batch_jobs_running", {"queue": q},
            [(t, float(rng.randrange(0, 20))) for t in grid() if t < ends * 1000])
    return data


def openmetrics(data) -> str:
    lines = []
    for (name, labels), pts in sorted(data.items()):
        ls = ",".join('%s="%s"' % (k, v) for k, v in labels)
        for t, v in pts:
            lines.append("%s{%s} %r %.3f" % (name, ls, v, t / 1000))
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    base = tmp_path_factory.mktemp("promql")
    now = int(time.time())
    t_start = (now // 3600) * 3600 - (HOURS + 1) * 3600
    data = make_dataset(t_start)

    om = base / "data.om"
    om.write_text(openmetrics(data))
    tsdb = base / "prom"
    subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tsdb)],
                   check=True, capture_output=True)
    cfg = base / "prometheus.yml"
    cfg.write_text("global:\n  scrape_interval: 15s\n")
    port = free_port()
    prom = subprocess.Popen(
        [PROMETHEUS, "--config.file=%s" % cfg, "--storage.tsdb.path=%s" % tsdb,
         "--storage.tsdb.retention.time=30d", "--web.listen-address=127.0.0.1:%d" % port],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    prom_url = "http://127.0.0.1:%d" % port

    loupe = Server(str(base / "loupe")).start()
    series = []
    for (name, labels), pts in data.items():
        series.append({
            "name": name,
            "labels": {k: v for k, v in labels if k != "project"},
            "time": [t / 1000 for t, _ in pts],
            "value": [v for _, v in pts],
        })
    for i in range(0, len(series), 20):
        req = urllib.request.Request(
            loupe.url + "/api/v1/metrics?project=" + PROJECT,
            data=json.dumps({"series": series[i:i + 20]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 200

    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(prom_url + "/-/ready", timeout=5) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, "prometheus did not become ready"
        time.sleep(0.3)
    yield {"prom": prom_url, "loupe": loupe.url, "t_start": t_start,
           "t_end": t_start + HOURS * 3600, "series": len(data)}
    prom.terminate()
    prom.wait(20)
    loupe.stop()


def load_queries(t_mid: float):
    out = []
    with open(QUERIES) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            instant_only = line.startswith("instant:")
            if instant_only:
                line = line[len("instant:"):].strip()
            out.append((line.replace("{T_MID}", "%d" % t_mid), instant_only))
    return out


def same_value(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if x == y:
        return True
    return abs(x - y) <= REL_TOL * max(abs(x), abs(y))


def compare(query: str, p: dict, l: dict) -> str | None:
    """None when both answers agree, else why not."""
    if p["status"] != l["status"]:
        return "status: prometheus %s (%s), loupe %s (%s)" % (
            p["status"], p.get("error"), l["status"], l.get("error"))
    if p["status"] == "error":
        if p["errorType"] != l["errorType"]:
            return "errorType: prometheus %s (%s), loupe %s (%s)" % (
                p["errorType"], p["error"], l["errorType"], l["error"])
        return None
    pd, ld = p["data"], l["data"]
    if pd["resultType"] != ld["resultType"]:
        return "resultType: prometheus %s, loupe %s" % (pd["resultType"], ld["resultType"])
    rt = pd["resultType"]
    if rt in ("scalar", "string"):
        pt, pv = pd["result"]
        lt, lv = ld["result"]
        if abs(pt - lt) > 1e-6 or not (same_value(pv, lv) if rt == "scalar" else pv == lv):
            return "prometheus %r, loupe %r" % (pd["result"], ld["result"])
        return None

    def keyed(result):
        out = {}
        for s in result:
            k = tuple(sorted(s["metric"].items()))
            out[k] = [s["value"]] if rt == "vector" else s["values"]
        return out

    pk, lk = keyed(pd["result"]), keyed(ld["result"])
    if set(pk) != set(lk):
        only_p = [dict(k) for k in set(pk) - set(lk)][:3]
        only_l = [dict(k) for k in set(lk) - set(pk)][:3]
        return "series differ: only in prometheus %s, only in loupe %s (%d vs %d)" % (
            only_p, only_l, len(pk), len(lk))
    for k in pk:
        a, b = pk[k], lk[k]
        if len(a) != len(b):
            return "%s: %d points in prometheus, %d in loupe" % (dict(k), len(a), len(b))
        for (ta, va), (tb, vb) in zip(a, b):
            if abs(ta - tb) > 1e-6 or not same_value(va, vb):
                return "%s at %s: prometheus %s, loupe %s (at %s)" % (dict(k), ta, va, vb, tb)
    if rt == "vector" and query.startswith("sort"):
        pv = [float(s["value"][1]) for s in pd["result"]]
        lv = [float(s["value"][1]) for s in ld["result"]]
        if [str(x) for x in pv] != [str(x) for x in lv]:
            return "order: prometheus %s, loupe %s" % (pv, lv)
    return None


def run_both(peers, path: str, params: dict):
    q = urllib.parse.urlencode(params)
    p = get_json("%s%s?%s" % (peers["prom"], path, q))
    l = get_json("%s%s?%s&project=%s" % (peers["loupe"], path, q, PROJECT))
    return p, l


def test_the_data_set_is_what_the_issue_asks_for(peers):
    assert peers["series"] >= 50
    p, l = run_both(peers, "/api/v1/query", {"query": "count({__name__=~'.+'})", "time": peers["t_start"] + 60})
    assert p["data"]["result"][0]["value"][1] == l["data"]["result"][0]["value"][1] == str(peers["series"])


def test_every_query_answers_as_prometheus_does(peers):
    t_start, t_end = peers["t_start"], peers["t_end"]
    t_mid = t_start + 75 * 60
    queries = load_queries(t_mid)
    assert len(queries) >= 100
    instants = [t_end, t_end - 3600 + 7.5, t_start + 100 * 60, t_mid + 0.25]
    ranges = [(t_start + 600, t_end, 300), (t_end - 3600, t_end, 61)]
    differ = []
    for query, instant_only in queries:
        for t in instants:
            p, l = run_both(peers, "/api/v1/query", {"query": query, "time": t})
            why = compare(query, p, l)
            if why:
                differ.append("instant %r at %s: %s" % (query, t, why))
        if instant_only:
            continue
        for start, end, step in ranges:
            p, l = run_both(peers, "/api/v1/query_range",
                            {"query": query, "start": start, "end": end, "step": step})
            why = compare(query, p, l)
            if why:
                differ.append("range %r [%s, %s, %ss]: %s" % (query, start, end, step, why))
    assert not differ, "%d answers differ:\n%s" % (len(differ), "\n".join(differ))


def test_range_errors_and_limits_answer_as_prometheus_does(peers):
    t_end = peers["t_end"]
    cases = [
        ("/api/v1/query_range", {"query": "http_requests_total[5m]", "start": t_end - 600, "end": t_end, "step": 60}),
        ("/api/v1/query_range", {"query": "up", "start": t_end, "end": t_end - 600, "step": 60}),
        ("/api/v1/query_range", {"query": "up", "start": t_end - 600, "end": t_end, "step": 0}),
        ("/api/v1/query_range", {"query": "up", "start": t_end - 86400 * 30, "end": t_end, "step": 1}),
        ("/api/v1/query", {"query": "up", "time": "not-a-time"}),
        ("/api/v1/query", {"query": ""}),
    ]
    for path, params in cases:
        p, l = run_both(peers, path, params)
        assert p["status"] == l["status"] == "error", (params, p, l)
        assert p["errorType"] == l["errorType"] == "bad_data", (params, p, l)


def test_times_and_steps_in_every_format(peers):
    t_end = peers["t_end"]
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_end - 600))
    iso_end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t_end))
    for params in (
        {"query": "rate(http_requests_total[5m])", "start": iso, "end": iso_end, "step": "1m"},
        {"query": "rate(http_requests_total[5m])", "start": t_end - 600, "end": t_end, "step": "60.0"},
    ):
        p, l = run_both(peers, "/api/v1/query_range", params)
        assert compare(params["query"], p, l) is None, params


def test_series_and_label_listings_match_prometheus(peers):
    t = {"start": peers["t_start"], "end": peers["t_end"]}
    p, l = run_both(peers, "/api/v1/series", dict(t, **{"match[]": 'http_requests_total{job="api"}'}))
    key = lambda r: sorted(tuple(sorted(m.items())) for m in r["data"])  # noqa: E731
    assert l["status"] == "success" and key(p) == key(l)
    p, l = run_both(peers, "/api/v1/labels", t)
    assert p["data"] == l["data"]
    p, l = run_both(peers, "/api/v1/label/instance/values", t)
    assert p["data"] == l["data"]
    p, l = run_both(peers, "/api/v1/label/__name__/values", t)
    assert p["data"] == l["data"]


def test_form_posts_as_grafana_sends_them(peers):
    t_end = peers["t_end"]
    form = urllib.parse.urlencode({"query": "sum by (job) (rate(http_requests_total[5m]))",
                                   "start": t_end - 600, "end": t_end, "step": 60,
                                   "project": PROJECT}).encode()
    answers = []
    for url in (peers["prom"], peers["loupe"]):
        req = urllib.request.Request(url + "/api/v1/query_range", data=form,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=30) as r:
            answers.append(json.load(r))
    assert compare("sum", answers[0], answers[1]) is None


def test_promtool_queries_loupe(peers):
    t_end = peers["t_end"]
    out = subprocess.run(
        [PROMTOOL, "query", "range", "--start", str(t_end - 600), "--end", str(t_end), "--step", "60s",
         peers["loupe"], 'sum by (job) (rate(http_requests_total[5m]))'],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '{job="api"}' in out.stdout and '{job="web"}' in out.stdout, out.stdout
    out = subprocess.run([PROMTOOL, "query", "instant", "--time", str(t_end), peers["loupe"],
                          'count(node_temperature_celsius)'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "=> 8 @" in out.stdout, out.stdout
    out = subprocess.run([PROMTOOL, "query", "instant", peers["loupe"], "sum("],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "bad_data" in out.stderr, (out.stdout, out.stderr)
