//! The OpenAPI document and the web UI's TypeScript types generated from it
//! are checked in (`ui/openapi.json`, `ui/src/api.gen.ts`): these tests fail
//! when either is stale. `LOUPE_BLESS=1 cargo test -p loupe-server --test
//! openapi` rewrites both (the types need Node.js and `npm ci` in `ui/`).

use std::path::{Path, PathBuf};
use std::process::Command;

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

#[test]
fn ui_api_types_are_current() {
    let cli = ui().join("node_modules/openapi-typescript/bin/cli.js");
    if !cli.is_file() {
        // No Node.js toolchain here, so no UI build either (see build.rs);
        // `ui/tests/run.sh` checks the types against ui/openapi.json too.
        eprintln!("skipped: {} is missing (npm ci in ui/)", cli.display());
        return;
    }
    // From the document this build serves, so that one bless updates both.
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, document()).unwrap();
    let out = Command::new("node")
        .arg(&cli)
        .arg(&doc)
        .current_dir(ui())
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "openapi-typescript failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ts = format!(
        "{GENERATED_HEADER}{}",
        String::from_utf8(out.stdout).expect("UTF-8")
    );
    check(
        &ui().join("src/api.gen.ts"),
        &ts,
        "run `LOUPE_BLESS=1 cargo test -p loupe-server --test openapi` (needs npm ci in ui/) and commit the result",
    );
}

/// What `ui/src/api.gen.ts` starts with; `ui/tests/api-types.test.mjs`
/// skips it when it compares.
const GENERATED_HEADER: &str = "\
// Generated from ui/openapi.json, the server's OpenAPI document, by
// openapi-typescript: do not edit. Regenerate with
// `LOUPE_BLESS=1 cargo test -p loupe-server --test openapi`.

";
