#!/usr/bin/env python3
"""Prometheus anchor for Loupe's storage benchmark: bytes per sample in a real
Prometheus TSDB block, for the same values Loupe stores.

Input: CSV rows `series_name,value` (stdin, or --input FILE), an optional
`series_name,value` header, values written with Python `repr` so they round-trip
exactly. Rows of different series may interleave; the i-th row of a series is
its i-th sample.

What it does:
  1. writes an OpenMetrics file, one gauge family per series (names sanitized to
     Prometheus rules, `train/loss` -> `train_loss`), all samples of a family
     contiguous, timestamps regular and increasing, ending with `# EOF`;
  2. runs `promtool tsdb create-blocks-from openmetrics` on it;
  3. sums the bytes of every block produced (chunks/*, index, meta.json,
     tombstones) and prints one JSON object on stdout.

Why regular timestamps (--interval-ms, default 15 s, Prometheus' common scrape
interval): Prometheus encodes timestamps with delta-of-delta (Gorilla). For a
perfectly regular series every delta-of-delta is 0 and costs one bit, so
timestamps add ~1/8 byte per sample (plus the full first timestamp and first
delta of each 120-sample chunk). What remains is almost entirely the cost of
its XOR value encoding: the anchor isolates Prometheus' *value* encoding, and
is the most favourable case for it. Real training logs have jittered wall-clock
times, which would cost Prometheus more, not less.

Prometheus stores milliseconds, so timestamps are written as seconds with
exactly three decimals.

Blocks: promtool 2.42 cuts backfilled data into blocks aligned to a block
duration (2 h by default, so 200k samples at 15 s, ~35 days, would give ~417
blocks, each repeating the series in its index). We pass the (hidden in 2.42)
`--max-block-duration` flag; promtool rounds it down to one of its compaction
ranges (2 h x 3^k, at most 2 h x 3^9 ~ 4.5 years), and blocks stay aligned to
multiples of that range, so data crossing a boundary still yields two blocks.
Chunks are cut every 120 samples whatever the block size, so the block
duration changes the index share, not the chunk bytes. The number of blocks is
reported.

Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. Colons are reserved for
# recording rules, so we map them to `_` as well.
_INVALID_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_]")


def sanitize_metric_name(name: str) -> str:
    """Maps a series name to a valid Prometheus metric name (`train/loss` -> `train_loss`)."""
    out = _INVALID_NAME_CHARS.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    return out


def format_value(v: float) -> str:
    """OpenMetrics spelling of a float; `repr` round-trips, and Go's ParseFloat reads it."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def format_timestamp_s(ms: int) -> str:
    """Milliseconds as exact decimal seconds (no float rounding)."""
    sign = "-" if ms < 0 else ""
    q, r = divmod(abs(ms), 1000)
    return f"{sign}{q}.{r:03d}"


def read_series(stream) -> dict[str, list[float]]:
    """Reads `series_name,value` rows into per-series value lists, in first-seen order."""
    series: dict[str, list[float]] = {}
    for lineno, row in enumerate(csv.reader(stream), start=1):
        if not row:
            continue
        if lineno == 1 and [c.strip() for c in row] == ["series_name", "value"]:
            continue
        if len(row) != 2:
            raise SystemExit(f"input line {lineno}: expected 2 columns (series_name,value), got {len(row)}")
        name, raw = row
        try:
            value = float(raw)
        except ValueError:
            raise SystemExit(f"input line {lineno}: value {raw!r} is not a float") from None
        series.setdefault(name, []).append(value)
    if not series:
        raise SystemExit("input has no samples")
    return series


def write_openmetrics(series: dict[str, list[float]], path: Path, start_ms: int, interval_ms: int) -> dict[str, str]:
    """Writes one gauge family per series; returns original name -> metric name."""
    names: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name in series:
        metric = sanitize_metric_name(name)
        if metric in seen:
            raise SystemExit(f"series {seen[metric]!r} and {name!r} both sanitize to metric name {metric!r}")
        seen[metric] = name
        names[name] = metric
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for name, values in series.items():
            metric = names[name]
            f.write(f"# TYPE {metric} gauge\n")
            ts = start_ms
            lines = []
            for v in values:
                lines.append(f"{metric} {format_value(v)} {format_timestamp_s(ts)}\n")
                ts += interval_ms
                if len(lines) >= 65536:
                    f.writelines(lines)
                    lines.clear()
            f.writelines(lines)
        f.write("# EOF\n")
    return names


def ensure_promtool(promtool: str, install: bool) -> str:
    found = shutil.which(promtool)
    if found:
        return found
    if not install:
        raise SystemExit(
            f"`{promtool}` is not on PATH. Install Debian's `prometheus` package "
            "(apt-get install -y prometheus), or rerun with --install to let this script do it."
        )
    print("promtool not found; installing Debian package `prometheus`", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update"], check=True, env=env, stdout=sys.stderr)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"], check=True, env=env, stdout=sys.stderr
    )
    found = shutil.which(promtool)
    if not found:
        raise SystemExit(f"installed `prometheus` but `{promtool}` is still not on PATH")
    return found


def promtool_version(promtool: str) -> str:
    out = subprocess.run([promtool, "--version"], check=True, capture_output=True, text=True)
    text = out.stdout + out.stderr
    m = re.search(r"version\s+(\S+)", text)
    return m.group(1) if m else text.strip().splitlines()[0]


def measure_blocks(outdir: Path) -> dict:
    """Sums the files of every block directory (one holding meta.json) under `outdir`."""
    totals = {"chunk_bytes": 0, "index_bytes": 0, "meta_bytes": 0, "other_bytes": 0}
    samples = chunks = 0
    blocks = []
    for block in sorted(p for p in outdir.iterdir() if (p / "meta.json").is_file()):
        meta = json.loads((block / "meta.json").read_text())
        stats = meta.get("stats", {})
        samples += stats.get("numSamples", 0)
        chunks += stats.get("numChunks", 0)
        blocks.append({"ulid": meta.get("ulid"), "min_time": meta.get("minTime"), "max_time": meta.get("maxTime")})
        for f in block.rglob("*"):
            if not f.is_file():
                continue
            size = f.stat().st_size
            rel = f.relative_to(block)
            if rel.parts[0] == "chunks":
                totals["chunk_bytes"] += size
            elif rel.name == "index":
                totals["index_bytes"] += size
            elif rel.name == "meta.json":
                totals["meta_bytes"] += size
            else:  # tombstones: part of every block
                totals["other_bytes"] += size
    if not blocks:
        raise SystemExit(f"promtool produced no block under {outdir}")
    return {"samples": samples, "chunks": chunks, "blocks": blocks, **totals}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, help="CSV file of series_name,value rows (default: stdin)")
    ap.add_argument("--interval-ms", type=int, default=15000, help="regular sample interval (default 15000)")
    ap.add_argument(
        "--start-ms", type=int, default=1_764_000_000_000, help="first timestamp, Unix ms (default late 2025)"
    )
    ap.add_argument(
        "--max-block-duration",
        default="100000h",
        help="passed to promtool; rounded down to 2h x 3^k, k <= 9 (default: the largest)",
    )
    ap.add_argument("--promtool", default="promtool", help="promtool executable (default: promtool on PATH)")
    ap.add_argument("--install", action="store_true", help="apt-get install prometheus if promtool is missing")
    ap.add_argument("--workdir", type=Path, help="keep the OpenMetrics file and blocks here (default: temp dir)")
    args = ap.parse_args(argv)
    if args.interval_ms <= 0:
        ap.error("--interval-ms must be positive")
    if args.start_ms < 0:
        ap.error("--start-ms must not be negative")

    promtool = ensure_promtool(args.promtool, args.install)
    version = promtool_version(promtool)

    if args.input:
        with args.input.open(newline="", encoding="utf-8") as f:
            series = read_series(f)
    else:
        series = read_series(sys.stdin)
    n_input = sum(len(v) for v in series.values())

    tmp = None
    if args.workdir:
        work = args.workdir
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="loupe-prom-anchor-")
        work = Path(tmp.name)
    try:
        om_path = work / "series.om"
        outdir = work / "blocks"
        if outdir.exists():
            shutil.rmtree(outdir)
        outdir.mkdir()
        write_openmetrics(series, om_path, args.start_ms, args.interval_ms)
        # promtool prints a table of blocks on stdout; keep our stdout JSON-only.
        subprocess.run(
            [
                promtool,
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                f"--max-block-duration={args.max_block_duration}",
                str(om_path),
                str(outdir),
            ],
            check=True,
            stdout=sys.stderr,
        )
        m = measure_blocks(outdir)
    finally:
        if tmp is not None:
            tmp.cleanup()

    if m["samples"] != n_input:
        raise SystemExit(f"promtool stored {m['samples']} samples but the input had {n_input}")
    block_bytes = m["chunk_bytes"] + m["index_bytes"] + m["meta_bytes"] + m["other_bytes"]
    result = {
        "samples": m["samples"],
        "series": len(series),
        "chunk_bytes": m["chunk_bytes"],
        "block_bytes": block_bytes,
        "chunk_bytes_per_sample": m["chunk_bytes"] / m["samples"],
        "block_bytes_per_sample": block_bytes / m["samples"],
        "index_bytes": m["index_bytes"],
        "meta_bytes": m["meta_bytes"],
        "tombstones_bytes": m["other_bytes"],
        "prom_chunks": m["chunks"],
        "blocks": len(m["blocks"]),
        "interval_ms": args.interval_ms,
        "start_ms": args.start_ms,
        "prometheus_version": version,
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
