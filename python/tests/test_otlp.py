"""The real OpenTelemetry Python SDK (``opentelemetry-sdk``) and its OTLP
exporters — ``opentelemetry-exporter-otlp-proto-http`` and
``-proto-grpc`` — exporting into a real ``loupe serve`` (the gRPC one on
``--otlp-grpc-listen``): counters, up-down counters, histograms,
exponential histograms (a View), observable gauges, cumulative and delta
temporality, and logs through the standard ``logging`` handler. What was
exported is read back through Loupe's own API."""

from __future__ import annotations

import json
import logging
import math
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter  # noqa: E402
from opentelemetry.metrics import CallbackOptions, Observation  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler  # noqa: E402
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.metrics import Counter, MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import (  # noqa: E402
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExportResult,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402

from conftest import Server, free_port  # noqa: E402

RESOURCE = {"service": "trainer-api", "host": "gpu-node-3", "instance": "api-0"}


@pytest.fixture
def loupe(tmp_path):
    grpc_port = free_port()
    s = Server(str(tmp_path), args=["--otlp-grpc-listen", "127.0.0.1:%d" % grpc_port]).start()
    s.grpc = "127.0.0.1:%d" % grpc_port
    yield s
    s.stop()


def exporters(loupe, transport, project, **kw):
    """A metric and a log exporter of the transport, writing to `project`."""
    if transport == "http":
        headers = {"authorization": "Bearer any", "x-loupe-project": project}
        return (
            HttpMetricExporter(endpoint=loupe.url + "/v1/metrics", headers=headers, **kw),
            HttpLogExporter(endpoint=loupe.url + "/v1/logs", headers=headers),
        )
    headers = (("authorization", "Bearer any"), ("x-loupe-project", project))
    return (
        GrpcMetricExporter(endpoint=loupe.grpc, insecure=True, headers=headers, **kw),
        GrpcLogExporter(endpoint=loupe.grpc, insecure=True, headers=headers),
    )


def resource():
    return Resource.create(
        {
            "service.name": RESOURCE["service"],
            "host.name": RESOURCE["host"],
            "service.instance.id": RESOURCE["instance"],
            "process.runtime.name": "cpython",  # dropped: not a Loupe label
        }
    )


def data(loupe, project, name, **labels):
    labels = {**RESOURCE, **labels}
    q = {"project": project, "name": name}
    q.update({"label.%s" % k: v for k, v in labels.items()})
    url = "%s/api/v1/metrics/data?%s" % (loupe.url, urllib.parse.urlencode(q))
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["y"]


def get(loupe, path, **q):
    url = "%s%s?%s" % (loupe.url, path, urllib.parse.urlencode(q))
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def export(reader, exporter):
    assert exporter.export(reader.get_metrics_data()) == MetricExportResult.SUCCESS


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_metrics_of_every_kind_read_back(loupe, transport):
    project = "otel-" + transport
    metric_exporter, _ = exporters(loupe, transport, project)
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        resource=resource(),
        metric_readers=[reader],
        views=[View(instrument_name="payload.bytes", aggregation=ExponentialBucketHistogramAggregation(max_size=40))],
    )
    meter = provider.get_meter("test")
    requests = meter.create_counter("http.requests")
    queue = meter.create_up_down_counter("queue.depth")
    latency = meter.create_histogram("http.latency", unit="ms")
    payload = meter.create_histogram("payload.bytes")
    temps = {"0": 70.0}

    def temperature(options: CallbackOptions):
        yield Observation(temps["0"], {"gpu": "0"})

    meter.create_observable_gauge("gpu.temperature", callbacks=[temperature])

    requests.add(5, {"route": "/generate"})
    queue.add(4)
    queue.add(-1)
    for v in (3, 7, 30):
        latency.record(v, {"route": "/generate"})
    for v in (1, 2, 1000):
        payload.record(v)
    export(reader, metric_exporter)
    requests.add(2, {"route": "/generate"})
    temps["0"] = 71.5
    export(reader, metric_exporter)

    # Cumulative: the running totals, one point per export.
    assert data(loupe, project, "http.requests", route="/generate") == [5.0, 7.0]
    assert data(loupe, project, "queue.depth") == [3.0, 3.0]
    assert data(loupe, project, "gpu.temperature", gpu="0") == [70.0, 71.5]
    assert data(loupe, project, "http.latency_bucket", route="/generate", le="5") == [1.0, 1.0]
    assert data(loupe, project, "http.latency_bucket", route="/generate", le="10") == [2.0, 2.0]
    assert data(loupe, project, "http.latency_bucket", route="/generate", le="+Inf") == [3.0, 3.0]
    assert data(loupe, project, "http.latency_sum", route="/generate") == [40.0, 40.0]
    assert data(loupe, project, "http.latency_count", route="/generate") == [3.0, 3.0]
    # Exponential: cumulative counts at the bucket bounds; 1000 lies in the
    # last bucket, so +Inf holds all three, and a bound at or above 2 holds 1 and 2.
    series = get(loupe, "/api/v1/metrics/series", project=project)["series"]
    bounds = sorted(
        float(s["labels"]["le"])
        for s in series
        if s["name"] == "payload.bytes_bucket" and s["labels"]["le"] != "+Inf"
    )
    assert bounds, series
    below = [b for b in bounds if b >= 2.0 and b < 1000.0]
    assert below, bounds
    le = next(s["labels"]["le"] for s in series if s["name"] == "payload.bytes_bucket" and float(s["labels"]["le"]) == below[0])
    assert data(loupe, project, "payload.bytes_bucket", le=le)[-1] == 2.0
    assert data(loupe, project, "payload.bytes_bucket", le="+Inf")[-1] == 3.0
    assert data(loupe, project, "payload.bytes_count")[-1] == 3.0
    assert data(loupe, project, "payload.bytes_sum")[-1] == 1003.0
    # The resource's other attributes are not labels.
    assert all("process.runtime.name" not in s["labels"] for s in series)
    assert all(s["labels"]["service"] == "trainer-api" for s in series)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_delta_temporality_stores_the_increments(loupe, transport):
    project = "otel-delta-" + transport
    metric_exporter, _ = exporters(
        loupe, transport, project, preferred_temporality={Counter: AggregationTemporality.DELTA}
    )
    reader = InMemoryMetricReader(preferred_temporality={Counter: AggregationTemporality.DELTA})
    provider = MeterProvider(resource=resource(), metric_readers=[reader])
    jobs = provider.get_meter("test").create_counter("jobs.done")
    jobs.add(3, {"queue": "a"})
    export(reader, metric_exporter)
    jobs.add(4, {"queue": "a"})
    export(reader, metric_exporter)
    assert data(loupe, project, "jobs.done", queue="a") == [3.0, 4.0]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_logging_handler_records_land_in_the_services_log_run(loupe, transport):
    project = "otel-logs-" + transport
    _, log_exporter = exporters(loupe, transport, project)
    provider = LoggerProvider(resource=resource())
    provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
    log = logging.getLogger("otlp-test-" + transport)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler = LoggingHandler(level=logging.DEBUG, logger_provider=provider)
    log.addHandler(handler)
    try:
        log.info("model loaded in %.1f s", 4.2, extra={"model": "llama-8b"})
        try:
            raise MemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        except MemoryError:
            log.exception("request failed")
        assert provider.force_flush(10_000)
    finally:
        log.removeHandler(handler)
        provider.shutdown()

    runs = get(loupe, "/api/v1/runs", project=project, tag="service-logs")["runs"]
    assert [r["name"] for r in runs] == ["trainer-api"]
    assert runs[0]["host"] == "gpu-node-3"
    lines = get(loupe, "/api/v1/runs/%s/logs" % runs[0]["id"])["records"]
    assert [(l["level"], l["text"]) for l in lines] == [
        ("info", "model loaded in 4.2 s"),
        ("error", "request failed"),
    ]
    assert lines[0]["attributes"]["model"] == "llama-8b"
    assert lines[1]["attributes"]["exception.type"] == "MemoryError"
    assert "CUDA out of memory" in lines[1]["attributes"]["exception.stacktrace"]
    found = get(loupe, "/api/v1/runs/%s/logs" % runs[0]["id"], q="loaded")["records"]
    assert len(found) == 1
    assert not math.isnan(lines[0]["time"])
