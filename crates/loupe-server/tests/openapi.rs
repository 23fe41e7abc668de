//! The OpenAPI document is checked in (`ui/openapi.json`): this test fails
//! when it is stale. `LOUPE_BLESS=1 cargo test -p loupe-server --test
//! openapi` rewrites it.

use std::path::{Path, PathBuf};

fn ui() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui")
}

fn bless() -> bool {
    std::env::var("LOUPE_BLESS").is_ok_and(|v| v == "1")
}

/// Compares `path` with `want`, or writes it when blessing.
fn check(path: &Path, want: &str, how: &str) {
    if bless() {
        std::fs::write(path, want).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let have = std::fs::read_to_string(path).unwrap_or_default();
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(have.lines().count().min(want.lines().count()));
        panic!(
            "{} is stale (first difference at line {}); {how}",
            path.display(),
            line + 1
        );
    }
}

/// The document as `GET /api/v1/openapi.json` serves it, pretty-printed.
fn document() -> String {
    let doc = loupe_server::routes::system::openapi_doc();
    let mut text = doc.to_pretty_json().expect("the document serializes");
    text.push('\n');
    text
}

#[test]
fn openapi_document_is_current() {
    check(
        &ui().join("openapi.json"),
        &document(),
        "run `LOUPE_BLESS=1 cargo test -p loupe-server --test openapi` and commit the result",
    );
}
