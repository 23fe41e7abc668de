#!/usr/bin/env bash
# Runs the UI's end-to-end tests in headless Chromium against a real
# `loupe serve`. Builds nothing: LOUPE_BIN must point at a built binary
# (whose embedded UI is what gets tested).
#
#   LOUPE_BIN=target/release/loupe ui/tests/run.sh
#
# CHROMIUM (default /usr/bin/chromium) and LOUPE_SCREENSHOTS (default
# ui/tests/screenshots) may be set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${LOUPE_BIN:?set LOUPE_BIN to the built loupe binary, e.g. target/release/loupe}"
LOUPE_BIN="$(cd "$(dirname "$LOUPE_BIN")" && pwd)/$(basename "$LOUPE_BIN")"
export LOUPE_BIN
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export LOUPE_SCREENSHOTS="${LOUPE_SCREENSHOTS:-$here/screenshots}"
[ -x "$CHROMIUM" ] || { echo "no Chromium at $CHROMIUM (apt-get install -y chromium)" >&2; exit 1; }
[ -d "$here/../node_modules/playwright-core" ] || { echo "run npm ci in ui/ first" >&2; exit 1; }
mkdir -p "$LOUPE_SCREENSHOTS"
cd "$here/.."
exec node --test --test-concurrency=1 --test-reporter=spec tests/api-types.test.mjs tests/format.test.mjs tests/time.test.mjs tests/e2e.test.mjs tests/links.test.mjs tests/csrf.test.mjs
