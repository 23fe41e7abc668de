"""``GET /metrics`` read by the Prometheus project's own Python parsers:
the text format 0.0.4 (what curl gets) and OpenMetrics 1.0 (what a
Prometheus server asks for), from the real ``loupe serve`` binary. Both
must parse, agree on every sample, and keep the names docs and alerts use.
``promtool check metrics`` lints the text too where it is installed."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess

import pytest

parser = pytest.importorskip("prometheus_client.parser")
openmetrics_parser = pytest.importorskip("prometheus_client.openmetrics.parser")

# What Prometheus 2.x sends on every scrape.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)

# family -> type, as both parsers name them (counters without `_total`).
FAMILIES = {
    "loupe_ingest_points": "counter",
    "loupe_ingest_log_records": "counter",
    "loupe_ingest_requests": "counter",
    "loupe_rejected_requests": "counter",
    "loupe_auth_failures": "counter",
    "loupe_query_requests": "counter",
    "loupe_ingest_skipped_string_fields": "counter",
    "loupe_scrape_targets": "gauge",
    "loupe_scrape_scrapes": "counter",
    "loupe_scrape_failures": "counter",
    "loupe_scrape_samples": "counter",
    "loupe_scrape_stale_markers": "counter",
    "loupe_scrape_exemplars_dropped": "counter",
    "loupe_tsdb_flushes": "counter",
    "loupe_tsdb_flush_errors": "counter",
    "loupe_tsdb_merges": "counter",
    "loupe_tsdb_merged_bytes": "counter",
    "loupe_tsdb_damage_found": "counter",
    "loupe_tsdb_series": "gauge",
    "loupe_tsdb_head_points": "gauge",
    "loupe_tsdb_segments": "gauge",
    "loupe_tsdb_torn_tail_bytes": "gauge",
    "loupe_store_bytes": "gauge",
    "loupe_tsdb_memory_bytes": "gauge",
    "loupe_wal_fsync_seconds": "histogram",
    "loupe_diagnosis_batches": "counter",
    "loupe_diagnosis_dropped_batches": "counter",
    "loupe_diagnosis_points": "counter",
    "loupe_diagnosis_caught_up_points": "counter",
    "loupe_diagnosis_findings": "counter",
    "loupe_diagnosis_lag_seconds": "gauge",
    "loupe_diagnosis_backlog_batches": "gauge",
    "loupe_incidents_open": "gauge",
    "loupe_live_subscribers": "gauge",
    "loupe_alert_notifications": "counter",
    "loupe_alert_queue_pending": "gauge",
    "loupe_alerts": "gauge",
    "loupe_http_refused_requests": "counter",
    "loupe_http_refused_connections": "counter",
    "loupe_http_connections": "gauge",
    "process_start_time_seconds": "gauge",
    "loupe_uptime_seconds": "gauge",
}


def call(server, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    out = (r.status, r.getheader("Content-Type"), r.read().decode())
    conn.close()
    return out


def families(parse, text):
    return {f.name: f for f in parse(text)}


def samples(fams):
    """(name, labels) -> value; `le` bounds as numbers."""

    def labels(s):
        return tuple(sorted((k, float(v) if k == "le" else v) for k, v in s.labels.items()))

    return {(s.name, labels(s)): s.value for f in fams.values() for s in f.samples}


@pytest.fixture
def busy_server(own_server):
    """A fresh server that has taken points and logs, and refused two requests."""
    s = own_server.start()
    js = {"Content-Type": "application/json"}
    assert call(s, "POST", "/api/v1/runs", json.dumps({"id": "prom", "project": "p"}), js)[0] in (200, 201)
    batch = {"series": [{"name": "loss", "step": list(range(100)), "value": [1.0 / (i + 1) for i in range(100)]}]}
    assert call(s, "POST", "/api/v1/runs/prom/metrics", json.dumps(batch), js)[0] == 200
    logs = {"records": [{"text": "step %d" % i} for i in range(7)]}
    assert call(s, "POST", "/api/v1/runs/prom/logs", json.dumps(logs), js)[0] == 200
    # The guard refuses a type any web page may send, and a foreign Host.
    assert call(s, "POST", "/api/v1/runs/prom/metrics", "{}", {"Content-Type": "text/plain"})[0] == 415
    assert call(s, "GET", "/api/v1/runs", headers={"Host": "evil.example"})[0] == 403
    return s


def test_both_formats_parse_and_agree(busy_server):
    status, ctype, text = call(busy_server, "GET", "/metrics")
    assert status == 200
    assert ctype == "text/plain; version=0.0.4; charset=utf-8"
    status, om_ctype, om_text = call(busy_server, "GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert status == 200
    assert om_ctype == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert om_text.endswith("# EOF\n")

    plain = families(parser.text_string_to_metric_families, text)
    om = families(openmetrics_parser.text_string_to_metric_families, om_text)
    for name, kind in FAMILIES.items():
        assert plain.get(name) is not None and plain[name].type == kind, (name, plain.get(name))
        assert om.get(name) is not None and om[name].type == kind, (name, om.get(name))
    # The version: an OpenMetrics info family; a gauge of 1 in the 0.0.4 text.
    assert om["loupe_build"].type == "info"
    assert plain["loupe_build_info"].type == "gauge"

    # The same series in both (bucket bounds compared as numbers: OpenMetrics
    # writes `1.0` where the 0.0.4 text writes `1`), and the same values for
    # what nothing changes between the two scrapes.
    a, b = samples(plain), samples(om)
    assert set(a) == set(b)
    steady = ("loupe_ingest_", "loupe_http_refused_", "loupe_wal_fsync_seconds", "loupe_tsdb_series")
    assert {k: v for k, v in a.items() if k[0].startswith(steady)} == {
        k: v for k, v in b.items() if k[0].startswith(steady)
    }

    s = samples(plain)
    assert s[("loupe_ingest_points_total", ())] == 100
    assert s[("loupe_ingest_log_records_total", ())] == 7
    assert s[("loupe_ingest_requests_total", ())] == 1
    assert s[("loupe_http_refused_requests_total", (("reason", "unsupported_media_type"),))] == 1
    assert s[("loupe_http_refused_requests_total", (("reason", "host_not_allowed"),))] == 1
    assert s[("loupe_http_refused_requests_total", (("reason", "origin_not_allowed"),))] == 0
    assert s[("loupe_wal_fsync_seconds_bucket", (("le", float("inf")),))] == s[("loupe_wal_fsync_seconds_count", ())] >= 1
    for part in ("segments", "wal", "sqlite"):
        assert ("loupe_store_bytes", (("part", part),)) in s
    # 100 points were just written and not flushed: the head holds them.
    assert s[("loupe_tsdb_memory_bytes", (("part", "head"),))] >= 100 * 8
    for part in ("page_cache", "segment_index"):
        assert ("loupe_tsdb_memory_bytes", (("part", part),)) in s


def test_promtool_accepts_the_text(busy_server):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    _, _, text = call(busy_server, "GET", "/metrics")
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
