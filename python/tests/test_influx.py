"""InfluxDB's own Python client (``influxdb-client``, the library Telegraf's
users and InfluxDB 2's docs point at) writing into a real ``loupe serve``:
points, integer, boolean and string fields, gzip, every precision, the
liveness check, and the error a bad line earns, read the way that client
reads it. What was written is read back through Loupe's own API."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
import urllib.request

import pytest

influxdb_client = pytest.importorskip("influxdb_client")
from influxdb_client import InfluxDBClient, Point, WritePrecision  # noqa: E402
from influxdb_client.client.write_api import SYNCHRONOUS  # noqa: E402
from influxdb_client.rest import ApiException  # noqa: E402


def data(server, project, name, **labels):
    q = {"project": project, "name": name}
    q.update({"label.%s" % k: v for k, v in labels.items()})
    url = "%s/api/v1/metrics/data?%s" % (server.url, urllib.parse.urlencode(q))
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def series_names(server, project):
    url = "%s/api/v1/metrics/series?project=%s" % (server.url, project)
    with urllib.request.urlopen(url, timeout=10) as r:
        return sorted(s["name"] for s in json.load(r)["series"])


@pytest.mark.parametrize("gzip", [False, True])
def test_the_influxdb_client_writes_points_that_read_back(own_server, gzip):
    s = own_server.start()
    bucket = "lab-gz" if gzip else "lab"
    with InfluxDBClient(url=s.url, token="local", org="lab", enable_gzip=gzip) as client:
        assert client.ping()
        w = client.write_api(write_options=SYNCHRONOUS)
        t0 = dt.datetime(2024, 12, 6, 15, 0, 0, tzinfo=dt.timezone.utc)
        points = [
            Point("gpu")
            .tag("host", "node 1")  # a space: the client escapes it
            .tag("gpu", "0")
            .field("util", 90.0 + i)
            .field("mem_used", 7_000_000_000 + i)  # an integer field: `…i`
            .field("throttled", i % 2 == 1)
            .field("model", 'H100 "SXM"')  # a string field: not stored
            .time(t0 + dt.timedelta(seconds=i), WritePrecision.S)
            for i in range(5)
        ]
        w.write(bucket=bucket, record=points, write_precision=WritePrecision.S)
        # Millisecond precision, a line written as text.
        w.write(bucket=bucket, record="train,job=a loss=0.25 1733497200123", write_precision=WritePrecision.MS)

    util = data(s, bucket, "gpu_util", host="node 1", gpu="0")
    t0s = t0.timestamp()
    assert util["x"] == [t0s + i for i in range(5)]
    assert util["y"] == [90.0 + i for i in range(5)]
    mem = data(s, bucket, "gpu_mem_used", host="node 1", gpu="0")
    assert mem["y"] == [7_000_000_000.0 + i for i in range(5)]
    thr = data(s, bucket, "gpu_throttled", host="node 1", gpu="0")
    assert thr["y"] == [0.0, 1.0, 0.0, 1.0, 0.0]
    loss = data(s, bucket, "train_loss", job="a")
    assert loss["x"] == [pytest.approx(1733497200.123, abs=1e-6)]
    assert series_names(s, bucket) == ["gpu_mem_used", "gpu_throttled", "gpu_util", "train_loss"]


def test_a_bad_line_is_an_error_the_client_reports_and_nothing_is_stored(own_server):
    s = own_server.start()
    with InfluxDBClient(url=s.url, token="local", org="lab") as client:
        w = client.write_api(write_options=SYNCHRONOUS)
        with pytest.raises(ApiException) as e:
            w.write(bucket="bad", record="cpu load=0.5 1\ncpu load=high 2", write_precision=WritePrecision.S)
    assert e.value.status == 400
    body = json.loads(e.value.body)
    assert body["code"] == "invalid"
    assert "line 2" in body["message"] and "cpu load=high 2" in body["message"]
    assert series_names(s, "bad") == []
