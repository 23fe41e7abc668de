//! `loupe-bench spool`: reading a large offline spool (`spool.jsonl` in the
//! Python SDK's format) with `loupe_agent::spool`, against the hand-written
//! prefix scanner `loupe sync` used before (issue 14), kept below only as
//! the yardstick.
//!
//! Best of `--repeat`: decoding lines already in memory (the parser
//! alone); reading the file's entries as an upload does before sending
//! (opening the spool, then its unacknowledged entries); and, for the new
//! reader, turning them into merged requests too.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use loupe_agent::spool::{self, Requests, Spool, decode_line};

#[derive(clap::Args)]
pub struct SpoolArgs {
    /// Lines of the generated spool.
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Steps per metrics line (three series each: loss, acc, lr).
    #[arg(long, default_value_t = 2)]
    steps_per_line: u64,
    /// Read this run directory's spool instead of generating one (e.g.
    /// one the Python SDK wrote: `python3 bench/sdk_spool.py DIR`).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Runs of each measurement; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
}

pub fn run(args: &SpoolArgs) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = match &args.run_dir {
        Some(d) => d.clone(),
        None => {
            let t = Instant::now();
            write_spool(tmp.path(), args.lines, args.steps_per_line)?;
            println!("generated in {:.2} s", t.elapsed().as_secs_f64());
            tmp.path().to_path_buf()
        }
    };
    let data = std::fs::read(dir.join(spool::SPOOL_FILE)).context("reading the spool")?;
    let lines = data.iter().filter(|&&c| c == b'\n').count();
    println!(
        "{}: {lines} lines, {:.1} MB",
        dir.join(spool::SPOOL_FILE).display(),
        data.len() as f64 / 1e6
    );
    let rate = |secs: f64| {
        format!(
            "{secs:.3} s  {:>6.2} M lines/s  {:>6.0} MB/s",
            lines as f64 / secs / 1e6,
            data.len() as f64 / secs / 1e6
        )
    };
    let best = |f: &mut dyn FnMut() -> Result<usize>| -> Result<f64> {
        let mut best = f64::INFINITY;
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            let n = f()?;
            best = best.min(t.elapsed().as_secs_f64());
            ensure!(n == lines, "read {n} of {lines} lines");
        }
        Ok(best)
    };
    // The lines are cut once, outside the timing: these two time the
    // parsers alone.
    let cut: Vec<&[u8]> = data.split_inclusive(|&c| c == b'\n').collect();
    let old_decode = best(&mut || {
        Ok(cut
            .iter()
            .filter(|l| handwritten::parse_line(l).is_some())
            .count())
    })?;
    let new_decode = best(&mut || Ok(cut.iter().filter(|l| decode_line(l).is_ok()).count()))?;
    // Before, `loupe sync` read and scanned the whole file when opening the
    // spool (for its last seq), then again from the marker (for the entries).
    let old_read = best(&mut || {
        let whole = std::fs::read(dir.join(spool::SPOOL_FILE))?;
        let n = handwritten::count_entries(&whole);
        drop(whole);
        let unacked = std::fs::read(dir.join(spool::SPOOL_FILE))?;
        ensure!(handwritten::count_entries(&unacked) == n);
        Ok(n)
    })?;
    let new_read = best(&mut || {
        let spool = Spool::open(&dir)?;
        let mut n = 0;
        for e in spool.unacked()? {
            e?;
            n += 1;
        }
        Ok(n)
    })?;
    let new_requests = best(&mut || {
        let spool = Spool::open(&dir)?;
        let mut n = 0;
        for r in Requests::new(spool.unacked()?) {
            n += r?.entries;
        }
        Ok(n)
    })?;
    println!("decode lines in memory");
    println!(
        "  hand-written prefix scanner (before) {}",
        rate(old_decode)
    );
    println!(
        "  serde_json + RawValue (now)          {}",
        rate(new_decode)
    );
    println!("read the file's entries");
    println!("  2 × (fs::read + scanner) (before)    {}", rate(old_read));
    println!("  Spool::unacked, streaming (now)      {}", rate(new_read));
    println!(
        "  + merged into requests (now)         {}",
        rate(new_requests)
    );
    Ok(())
}

/// Writes a spool in the SDK's exact format: a run line, metrics lines
/// (one in 50 a log batch with its idempotency key), a final patch.
fn write_spool(dir: &Path, lines: u64, steps_per_line: u64) -> Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(dir.join(spool::SPOOL_FILE))?);
    writeln!(
        out,
        r#"{{"kind":"run","seq":1,"body":{{"id":"bench1","project":"p","name":"spool","config":{{"lr":0.0003}}}}}}"#
    )?;
    let mut step = 0u64;
    for seq in 2..lines {
        if seq % 50 == 0 {
            writeln!(
                out,
                r#"{{"kind":"logs","seq":{seq},"key":"5e1f0c2a9b7d:{seq}","body":{{"records":[{{"time":1796671077.4497986,"stream":"stdout","level":"info","text":"step {step}: loss went down"}}]}}}}"#
            )?;
            continue;
        }
        let steps: Vec<u64> = (step..step + steps_per_line).collect();
        step += steps_per_line;
        let join =
            |f: &dyn Fn(u64) -> String| steps.iter().map(|&s| f(s)).collect::<Vec<_>>().join(",");
        let step_col = join(&|s| s.to_string());
        let time_col = join(&|s| format!("{:.7}", 1796671077.0 + s as f64 * 0.153));
        let loss = join(&|s| {
            if s % 997 == 0 {
                "\"NaN\"".into()
            } else {
                format!("{}", 2.0 / (1.0 + s as f64 * 1e-3))
            }
        });
        let acc = join(&|s| format!("{}", (s % 1000) as f64 * 1e-3));
        let series = [
            ("loss", loss),
            ("acc", acc),
            ("lr", join(&|_| "0.00029999999999999997".into())),
        ]
        .iter()
        .map(|(name, values)| {
            format!(
                r#"{{"name":"{name}","step":[{step_col}],"time":[{time_col}],"value":[{values}]}}"#
            )
        })
        .collect::<Vec<_>>()
        .join(",");
        writeln!(
            out,
            r#"{{"kind":"metrics","seq":{seq},"body":{{"series":[{series}]}}}}"#
        )?;
    }
    writeln!(
        out,
        r#"{{"kind":"patch","seq":{lines},"body":{{"status":"finished","exit_code":0}}}}"#
    )?;
    out.into_inner()?.sync_all()?;
    Ok(())
}

/// The line reader `loupe sync` had before issue 14: the SDK's exact prefix
/// matched by hand, the body taken unchecked up to the line's last `}`, a
/// JSON parse (and re-encoding of the body) for anything else.
mod handwritten {
    use serde_json::Value;

    const KINDS: [&str; 4] = ["run", "metrics", "logs", "patch"];

    /// Entries among the complete lines of `data`.
    /// As before: the complete lines cut with a byte scan, each parsed.
    pub fn count_entries(data: &[u8]) -> usize {
        let complete = data.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
        let mut n = 0;
        let mut pos = 0;
        while let Some(nl) = data[pos..complete].iter().position(|&c| c == b'\n') {
            n += usize::from(parse_line(&data[pos..pos + nl + 1]).is_some());
            pos += nl + 1;
        }
        n
    }

    fn valid_key(k: &str) -> bool {
        (1..=128).contains(&k.len())
            && k.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.:-".contains(&c))
    }

    type Parsed = (u64, String, Option<String>, Vec<u8>);

    pub fn parse_line(line: &[u8]) -> Option<Parsed> {
        if let Some(fast) = parse_line_fast(line) {
            return Some(fast);
        }
        let v: Value = serde_json::from_slice(line).ok()?;
        let kind = v["kind"].as_str().filter(|k| KINDS.contains(k))?.to_owned();
        let seq = v["seq"].as_u64()?;
        let body = v.get("body").filter(|b| b.is_object())?;
        let key = v["key"]
            .as_str()
            .filter(|k| valid_key(k))
            .map(str::to_owned);
        Some((seq, kind, key, serde_json::to_vec(body).ok()?))
    }

    fn parse_line_fast(line: &[u8]) -> Option<Parsed> {
        let rest = line.strip_prefix(b"{\"kind\":\"")?;
        let k_end = rest.iter().position(|&c| c == b'"')?;
        let kind = std::str::from_utf8(&rest[..k_end]).ok()?;
        if !KINDS.contains(&kind) {
            return None;
        }
        let rest = rest[k_end..].strip_prefix(b"\",\"seq\":")?;
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let seq: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        let mut rest = rest[digits..].strip_prefix(b",")?;
        let mut key = None;
        if let Some(r) = rest.strip_prefix(b"\"key\":\"") {
            let end = r.iter().position(|&c| c == b'"')?;
            let k = std::str::from_utf8(&r[..end]).ok()?;
            if !valid_key(k) {
                return None;
            }
            key = Some(k.to_owned());
            rest = r[end..].strip_prefix(b"\",")?;
        }
        let body = rest.strip_prefix(b"\"body\":")?.strip_suffix(b"}\n")?;
        Some((seq, kind.to_owned(), key, body.to_vec()))
    }
}
