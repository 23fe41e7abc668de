//! Golden files for the Prometheus exposition decoder: each body under
//! `tests/golden/exposition/` (`.prom`: text 0.0.4, `.om`: OpenMetrics;
//! `client_python.*` written by the real `prometheus_client`) has beside it
//! the decoder's reading, one sample a line with its value's exact bits.
//! `LOUPE_BLESS=1` rewrites them; review the diff.

use std::fmt::Write as _;
use std::path::Path;

use loupe_ingest::exposition::{ExpositionFormat, decode_exposition};

fn render(body: &[u8], format: ExpositionFormat) -> String {
    let e = decode_exposition(body, format).unwrap_or_else(|err| panic!("{err}"));
    let mut out = String::new();
    writeln!(out, "exemplars dropped: {}", e.exemplars_dropped).unwrap();
    for m in &e.metadata {
        writeln!(
            out,
            "meta {} type={:?} unit={:?} help={:?}",
            m.name, m.kind, m.unit, m.help
        )
        .unwrap();
    }
    for s in &e.samples {
        let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        writeln!(
            out,
            "{}{{{}}} {:?} (0x{:016x}) ts={:?}",
            s.name,
            labels.join(","),
            s.value,
            s.value.to_bits(),
            s.timestamp_ms
        )
        .unwrap();
    }
    out
}

#[test]
fn golden_bodies_decode_as_recorded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/exposition");
    let bless = std::env::var_os("LOUPE_BLESS").is_some();
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("prom") => ExpositionFormat::Text004,
            Some("om") => ExpositionFormat::OpenMetrics,
            _ => continue,
        };
        seen += 1;
        let got = render(&std::fs::read(&path).unwrap(), format);
        let golden = path.with_extension(format!(
            "{}.golden",
            path.extension().unwrap().to_str().unwrap()
        ));
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e} (LOUPE_BLESS=1 writes it)", golden.display()));
        assert_eq!(got, want, "{} differs from its golden file", path.display());
    }
    assert!(seen >= 4, "golden bodies missing from {}", dir.display());
}
