#!/usr/bin/env bash
# Regenerates fuzz/seeds/<target>/ with the engine's own encoders.
# Run from anywhere; needs only the stable toolchain.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
rm -rf "$here/seeds"
cargo run --quiet --manifest-path "$here/Cargo.toml" --example make_seeds -- "$here/seeds"
