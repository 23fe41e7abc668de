//! Builds the web UI (`ui/`, TypeScript + Vite) into `ui/dist` when the
//! sources are newer than the built assets, and tells `src/ui.rs` which
//! folder to embed (`LOUPE_UI_DIR`).
//!
//! A machine without npm still builds the server: it embeds a one-page
//! notice saying how to build the UI, and cargo prints a warning. Set
//! `LOUPE_UI_REQUIRED=1` (CI does) to make a failed UI build fail the build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

/// Inputs of the UI build, relative to `ui/`.
const INPUTS: &[&str] = &[
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "tsconfig.json",
    "vite.config.ts",
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ui = manifest.join("../../ui");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    for input in INPUTS {
        println!("cargo:rerun-if-changed={}", ui.join(input).display());
    }
    println!("cargo:rerun-if-env-changed=LOUPE_UI_REQUIRED");
    println!("cargo:rerun-if-env-changed=PATH");
    let required = std::env::var("LOUPE_UI_REQUIRED").is_ok_and(|v| v == "1");

    let dist = ui.join("dist");
    let embed = match ensure_built(&ui, &dist) {
        Ok(()) => dist,
        Err(why) => {
            if required {
                panic!("the web UI could not be built: {why}");
            }
            if dist.join("index.html").is_file() {
                println!("cargo:warning=web UI not rebuilt ({why}); embedding the older ui/dist");
                dist
            } else {
                println!(
                    "cargo:warning=web UI not built ({why}); `loupe serve` will show how to build it"
                );
                fallback_page(&out, &why)
            }
        }
    };
    let embed = embed.canonicalize().unwrap_or(embed);
    println!("cargo:rustc-env=LOUPE_UI_DIR={}", embed.display());
}

/// Builds `ui/dist` unless it is newer than every input.
fn ensure_built(ui: &Path, dist: &Path) -> Result<(), String> {
    if !ui.join("package.json").is_file() {
        return Err(format!("no UI sources at {}", ui.display()));
    }
    let built = mtime(&dist.join("index.html"));
    let newest_input = INPUTS
        .iter()
        .filter_map(|i| newest_mtime(&ui.join(i)))
        .max();
    if let (Some(built), Some(input)) = (built, newest_input)
        && built >= input
    {
        return Ok(());
    }
    let npm = find_on_path(if cfg!(windows) { "npm.cmd" } else { "npm" }).ok_or_else(|| {
        "npm is not on PATH; install Node.js 20+ and run `npm ci && npm run build` in ui/"
            .to_string()
    })?;
    if !ui.join("node_modules").is_dir() {
        run(&npm, &["ci", "--no-audit", "--no-fund"], ui)?;
    }
    // Build into a private folder and swap it in, so that two cargo builds
    // sharing this checkout never embed a half-written dist.
    let tmp = format!(".dist-build-{}", std::process::id());
    let result = run(&npm, &["run", "build", "--", "--outDir", &tmp], ui);
    let tmp = ui.join(tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = ui.join(format!(".dist-old-{}", std::process::id()));
    if dist.exists() {
        std::fs::rename(dist, &old).map_err(|e| format!("moving the old ui/dist away: {e}"))?;
    }
    std::fs::rename(&tmp, dist).map_err(|e| format!("moving the new build to ui/dist: {e}"))?;
    let _ = std::fs::remove_dir_all(old);
    Ok(())
}

fn run(npm: &Path, args: &[&str], dir: &Path) -> Result<(), String> {
    let output = Command::new(npm)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running npm {}: {e}", args.join(" ")))?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    // Build-script stdout is parsed by cargo: the tool's output goes to
    // stderr, where cargo shows it on failure.
    eprintln!("{text}");
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!(
        "`npm {}` failed ({}): {last}",
        args.join(" "),
        output.status
    ))
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The newest modification time of a file, or of anything under a folder.
fn newest_mtime(p: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(p).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    let mut newest = own;
    for entry in std::fs::read_dir(p).ok()?.flatten() {
        newest = newest.max(newest_mtime(&entry.path()));
    }
    newest
}

/// A folder holding only an `index.html` that says how to build the UI.
fn fallback_page(out: &Path, why: &str) -> PathBuf {
    let dir = out.join("ui-fallback");
    std::fs::create_dir_all(&dir).expect("creating a folder in OUT_DIR");
    let why = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Loupe — UI not built</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}}
code,pre{{background:#8882;padding:.1rem .3rem;border-radius:4px}}</style></head>
<body><h1>The Loupe web UI was not built</h1>
<p>This <code>loupe</code> binary was compiled without its web assets: {why}.</p>
<p>The HTTP API works: see <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>
<p>To build the UI, install Node.js 20 or newer, then from the repository root:</p>
<pre>cd ui &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd ..
cargo build --release -p loupe</pre>
</body></html>
"#
    );
    std::fs::write(dir.join("index.html"), page).expect("writing the fallback page");
    dir
}
