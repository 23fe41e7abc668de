#!/usr/bin/env bash
# Regenerates fuzz/seeds/<target>/ with the engine's own encoders.
# Run from anywhere; needs only the stable toolchain.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# Only the folders this script writes; hand-written seeds (ingest_batches) stay.
for t in wal_frames paged_column segment_file gorilla roundtrip_paged; do rm -rf "$here/seeds/$t"; done
cargo run --quiet --manifest-path "$here/Cargo.toml" --example make_seeds -- "$here/seeds"
