"""``log()``'s fast path: calls that log the same names with plain numbers
go to one flat "frame" instead of per-series columns. Whatever mix of
calls a loop makes, every series must read back with its points in the
order they were logged, exactly, and logging must not make the garbage
collector run."""

from __future__ import annotations

import fractions
import gc
import random

import pytest

import loupe


def expected_after(calls):
    """name -> [(step, value)] in logging order, as the server keeps it
    (newest write of a step wins)."""
    out = {}
    for step, data in calls:
        for k, v in data.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.setdefault(k, {})[step] = float(v)
    return {k: sorted(d.items()) for k, d in out.items()}


def test_mixed_calls_keep_every_series_in_order(server, api):
    rnd = random.Random(7)
    run = loupe.init(server=server.url, capture_console=False)
    calls = []
    step = 0
    shapes = [("a", "b", "c"), ("a", "b", "c"), ("a",), ("b", "a"), ("a", "b", "c")]
    for i in range(3000):
        names = shapes[(i // 37) % len(shapes)]  # runs of one shape, then another
        data = {k: rnd.random() * 10 ** rnd.randint(-5, 5) for k in names}
        if i % 251 == 0:
            data["a"] = fractions.Fraction(i, 7)  # needs converting: the frame ends there
        if i % 401 == 0:
            data["b"] = rnd.randint(-(1 << 40), 1 << 40)  # a plain int keeps the frame
        if i % 97 == 0:
            step += 5  # a jump in the steps
        run.log(data, step=step)
        calls.append((step, {k: (float(v) if isinstance(v, fractions.Fraction) else v) for k, v in data.items()}))
        step += 1
        if i % 700 == 0:
            assert run.flush(10)  # a collection in the middle of a frame
    # Same step again (commit=False, then the step's last value wins).
    run.log({"a": 1.5, "b": 2.5, "c": 3.5}, step=step, commit=False)
    run.log({"a": 4.5, "b": 5.5, "c": 6.5}, step=step)
    calls.append((step, {"a": 1.5, "b": 2.5, "c": 3.5}))
    calls.append((step, {"a": 4.5, "b": 5.5, "c": 6.5}))
    run.finish()
    for name, points in expected_after(calls).items():
        got = api.series(run.id, name)
        assert got["step"] == [s for s, _ in points], name
        assert got["y"] == [v for _, v in points], name


def test_a_value_that_is_not_a_number_in_a_frame_is_dropped_with_one_warning(server, api):
    run = loupe.init(server=server.url, capture_console=False)
    for i in range(10):
        run.log({"loss": float(i), "acc": 0.5})
    with pytest.warns(loupe.LoupeWarning, match="'acc' is a str"):
        run.log({"loss": 10.0, "acc": "n/a"})
    for i in range(11, 20):
        run.log({"loss": float(i), "acc": 0.5})
    run.finish()
    assert api.series(run.id, "loss")["y"] == [float(i) for i in range(20)]
    assert api.series(run.id, "acc")["step"] == [i for i in range(20) if i != 10]


def test_logging_plain_numbers_allocates_nothing_the_collector_tracks(server, monkeypatch):
    # No collection while the loop runs: only log() allocates.
    monkeypatch.setenv("LOUPE_FLUSH_INTERVAL", "60")
    monkeypatch.setattr("loupe._run.BATCH_POINTS", 10**9)
    run = loupe.init(server=server.url, capture_console=False)
    row = {"loss": 0.5, "acc": 0.25, "lr": 3e-4, "grad_norm": 1.0, "step_time": 0.1}
    for _ in range(10):
        run.log(row)
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(5000):
            run.log(row)
        after = len(gc.get_objects())
    finally:
        gc.enable()
    # A container per call (5000 of them) would be tracked until a
    # collection, and would make logging trigger collections, full ones
    # too, whose cost grows with the training process's heap.
    assert after - before < 100
    run.finish()
