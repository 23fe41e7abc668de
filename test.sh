#!/usr/bin/env bash
# Runs Loupe's full test suite. Extra arguments go to the test runner
# (cargo-nextest when installed, else `cargo test`): a filter such as
# `./test.sh crash`, or a package such as `./test.sh -p loupe-tsdb`.
#
# Release mode: the crash and reliability tests do real IO at volume and are
# too slow in debug builds.
set -euo pipefail
cd "$(dirname "$0")"

# `--workspace` would override a `-p` given on the command line.
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
        --) break ;;
        -p | -p* | --package | --package=*) scope=() ;;
    esac
done

if [[ $# -eq 0 ]]; then
    # The whole suite: what its tests use, from PyPI when missing, as .ci/run
    # installs it, so a fresh machine skips no more than CI does (the torch
    # tests). module:package pairs; aiosmtpd is the SMTP server the alerting
    # tests (Rust, below) deliver to; the rest serve the Python tests
    # (prometheus_client: the Prometheus project's parsers, reading /metrics;
    # influxdb-client: InfluxDB's own client, writing line protocol;
    # opentelemetry-sdk and its OTLP/HTTP and OTLP/gRPC exporters: the
    # OpenTelemetry SDK exporting metrics and logs to Loupe).
    missing=()
    for pair in pytest:pytest numpy:numpy keras:keras jax:'jax[cpu]' \
        transformers:transformers aiosmtpd:aiosmtpd prometheus_client:prometheus_client \
        influxdb_client:influxdb-client opentelemetry.sdk:opentelemetry-sdk \
        opentelemetry.exporter.otlp.proto.http:opentelemetry-exporter-otlp-proto-http \
        opentelemetry.exporter.otlp.proto.grpc:opentelemetry-exporter-otlp-proto-grpc; do
        python3 -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
    done
    if ((${#missing[@]})); then
        python3 -m pip install --quiet --disable-pip-version-check "${missing[@]}"
    fi
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run "${scope[@]}" --release "$@"
    # nextest does not run doctests.
    cargo test --doc --workspace --release
else
    cargo test "${scope[@]}" --release "$@"
fi

# The Python SDK's tests run against the real `loupe serve` binary; only
# when the whole suite runs (no package or filter was given).
if [[ $# -eq 0 ]]; then
    cargo build --release -p loupe
    LOUPE_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/release/loupe" python3 -m pytest python/tests -q

    # The web UI, end to end in headless Chromium against the same binary.
    if [[ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
        else
            echo "the UI tests need Chromium: sudo apt-get install chromium (or set CHROMIUM)" >&2
            exit 1
        fi
    fi
    # Installed once, and again whenever ui/package-lock.json changed since
    # (npm writes node_modules/.package-lock.json at each install).
    if [[ ! -d ui/node_modules/playwright-core || ui/package-lock.json -nt ui/node_modules/.package-lock.json ]]; then
        (cd ui && npm ci --no-audit --no-fund)
    fi
    LOUPE_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/release/loupe" ui/tests/run.sh
fi
