//! Scores every NAB data file with the general anomaly detector in one
//! process (fast iteration; `bench/nab.py` scores through `loupe detect`).
//!
//! `cargo run --release -p loupe-diagnose --example nab_detect -- \
//!     NAB_DIR RESULTS_DIR NAME [CONFIG_JSON]` writes
//! `RESULTS_DIR/NAME/<category>/NAME_<file>.csv` (the label column copied
//! from NAB's null results) and prints the throughput. Then run NAB's
//! scorer on RESULTS_DIR's parent copy of NAB.

use std::fs;
use std::path::Path;
use std::time::Instant;

use loupe_diagnose::anomaly::{AnomalyConfig, AnomalyDetector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [nab, out, name, rest @ ..] = args.as_slice() else {
        return Err("usage: nab_detect NAB_DIR RESULTS_DIR NAME [CONFIG_JSON]".into());
    };
    let cfg: AnomalyConfig = match rest.first() {
        Some(json) => serde_json::from_str(json)?,
        None => AnomalyConfig::default(),
    };
    let (mut points, mut alarms, mut busy) = (0usize, 0usize, 0.0f64);
    let mut categories: Vec<_> = fs::read_dir(Path::new(nab).join("data"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    categories.sort();
    for cat in categories {
        let cat_name = cat.file_name().and_then(|s| s.to_str()).unwrap_or("");
        let mut files: Vec<_> = fs::read_dir(&cat)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for file in files {
            let file_name = file.file_name().and_then(|s| s.to_str()).unwrap_or("");
            let text = fs::read_to_string(&file)?;
            let null = fs::read_to_string(
                Path::new(nab)
                    .join("results/null")
                    .join(cat_name)
                    .join(format!("null_{file_name}")),
            )?;
            let labels: Vec<&str> = null
                .lines()
                .skip(1)
                .map(|l| l.rsplit(',').next().unwrap_or("0"))
                .collect();
            let rows: Vec<(&str, f64, f64)> = text
                .lines()
                .skip(1)
                .filter_map(|l| {
                    let (t, v) = l.split_once(',')?;
                    Some((t, unix_seconds(t)?, v.trim().parse().ok()?))
                })
                .collect();
            let mut det = AnomalyDetector::new(&cfg);
            let start = Instant::now();
            let scored: Vec<_> = rows.iter().map(|(_, t, x)| det.observe(*t, *x)).collect();
            busy += start.elapsed().as_secs_f64();
            points += rows.len();
            alarms += scored.iter().filter(|s| s.alarm).count();
            let mut csv = String::from("timestamp,value,anomaly_score,label\n");
            for (i, ((ts, _, x), s)) in rows.iter().zip(&scored).enumerate() {
                let label = labels.get(i).copied().unwrap_or("0");
                csv.push_str(&format!("{ts},{x},{:.6},{label}\n", s.score));
            }
            let dir = Path::new(out).join(name).join(cat_name);
            fs::create_dir_all(&dir)?;
            fs::write(dir.join(format!("{name}_{file_name}")), csv)?;
        }
    }
    eprintln!(
        "{points} points, {alarms} alarms, {:.2} M points/s",
        points as f64 / busy.max(1e-9) / 1e6
    );
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) as Unix seconds.
fn unix_seconds(s: &str) -> Option<f64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':').map(|p| p.parse::<i64>());
    let (hh, mm, ss) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    // Days from the civil date (proleptic Gregorian).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64)
}
