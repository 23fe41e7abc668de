//! `loupe store verify` and `loupe store repair`: every file of a data
//! directory checked, each problem named; damage quarantined on request.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use loupe_tsdb::{Problem, TsdbOptions, VerifyReport};
use serde_json::json;

/// The stores of a directory given on the command line.
pub struct Layout {
    /// The time-series store (the directory holding `MANIFEST`).
    pub tsdb: PathBuf,
    /// Every SQLite file of the data directory.
    pub sqlite: Vec<PathBuf>,
}

/// Accepts a data directory (`DIR/tsdb` + `DIR/*.sqlite`, what `loupe serve
/// --data` names) or a bare time-series store (`DIR/MANIFEST`).
pub fn layout(dir: &Path) -> Result<Layout> {
    if dir.join("tsdb").join("MANIFEST").is_file() {
        let mut sqlite = Vec::new();
        find_sqlite(dir, &mut sqlite);
        sqlite.sort();
        return Ok(Layout {
            tsdb: dir.join("tsdb"),
            sqlite,
        });
    }
    if dir.join("MANIFEST").is_file() {
        return Ok(Layout {
            tsdb: dir.to_path_buf(),
            sqlite: Vec::new(),
        });
    }
    bail!(
        "{} is not a Loupe data directory: expected {}/tsdb/MANIFEST (a `loupe serve --data` \
         directory) or {}/MANIFEST (its time-series store)",
        dir.display(),
        dir.display(),
        dir.display()
    )
}

/// `*.sqlite` files under `dir`, outside the time-series store and the quarantine.
fn find_sqlite(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in rd.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "tsdb" && name != loupe_tsdb::QUARANTINE_DIR {
            find_sqlite(&path, out);
        } else if path.extension().is_some_and(|e| e == "sqlite") {
            out.push(path);
        }
    }
}

/// Everything `verify` found.
struct Findings {
    tsdb: VerifyReport,
    /// Per SQLite file, what `PRAGMA integrity_check` named.
    sqlite: Vec<(PathBuf, Vec<String>)>,
}

impl Findings {
    fn problems(&self) -> Vec<Problem> {
        let mut out = self.tsdb.problems.clone();
        for (file, lines) in &self.sqlite {
            out.extend(lines.iter().map(|l| Problem {
                file: file.clone(),
                detail: format!("integrity_check: {l}"),
            }));
        }
        out
    }
}

fn check(l: &Layout) -> Result<Findings> {
    let tsdb = loupe_tsdb::verify_dir(&l.tsdb)?;
    let mut sqlite = Vec::new();
    for f in &l.sqlite {
        sqlite.push((f.clone(), loupe_meta::integrity_check(f)?));
    }
    Ok(Findings { tsdb, sqlite })
}

/// `loupe store verify DIR [--json]`: exits non-zero naming each problem.
pub fn verify(dir: &Path, as_json: bool) -> Result<()> {
    let l = layout(dir)?;
    let f = check(&l)?;
    let problems = f.problems();
    if as_json {
        let doc = json!({
            "ok": problems.is_empty(),
            "problems": problems,
            "notes": f.tsdb.notes,
            "checked": {
                "segments": f.tsdb.segments,
                "chunks": f.tsdb.chunks,
                "points": f.tsdb.points,
                "wal_files": f.tsdb.wal_files,
                "wal_records": f.tsdb.wal_records,
                "sqlite_files": f.sqlite.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            },
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for n in &f.tsdb.notes {
            println!("note: {n}");
        }
        for p in &problems {
            eprintln!("damaged: {p}");
        }
        if problems.is_empty() {
            println!(
                "ok: {} segments ({} chunks, {} points, every page decoded), {} WAL files \
                 ({} records), {} SQLite files pass integrity_check",
                f.tsdb.segments,
                f.tsdb.chunks,
                f.tsdb.points,
                f.tsdb.wal_files,
                f.tsdb.wal_records,
                f.sqlite.len()
            );
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} problem(s) found; `loupe store repair {}` quarantines damaged time-series data",
            problems.len(),
            dir.display()
        );
    }
    Ok(())
}

/// `loupe store repair DIR [--yes]`: quarantines what verify finds damaged
/// in the time-series store, after a confirmation.
pub fn repair(dir: &Path, yes: bool) -> Result<()> {
    let l = layout(dir)?;
    let f = check(&l)?;
    let sqlite_bad: Vec<&PathBuf> = f
        .sqlite
        .iter()
        .filter(|(_, lines)| !lines.is_empty())
        .map(|(p, _)| p)
        .collect();
    if f.tsdb.problems.is_empty() {
        println!("the time-series store has no damage; nothing to quarantine");
    } else {
        for p in &f.tsdb.problems {
            println!("damaged: {p}");
        }
        println!(
            "repair moves the damaged segments and chunks (and copies damaged WAL files) to {}, \
             with a note of what is lost; the rest keeps serving",
            l.tsdb.join(loupe_tsdb::QUARANTINE_DIR).display()
        );
        if !yes && !confirm("quarantine them?")? {
            bail!("nothing changed");
        }
        let r = loupe_tsdb::repair_dir(&l.tsdb, TsdbOptions::default())?;
        print_repair(&r);
        if !r.remaining.is_empty() {
            bail!("{} problem(s) remain after the repair", r.remaining.len());
        }
    }
    if !sqlite_bad.is_empty() {
        for p in &sqlite_bad {
            eprintln!(
                "damaged: {} fails integrity_check; repair does not rewrite SQLite files: \
                 restore it from a backup, or salvage it with `sqlite3 {} .recover`",
                p.display(),
                p.display()
            );
        }
        bail!("{} SQLite file(s) damaged", sqlite_bad.len());
    }
    Ok(())
}

fn print_repair(r: &loupe_tsdb::RepairReport) {
    for s in &r.segments_removed {
        println!("quarantined segment {}", s.display());
    }
    for c in &r.chunks_lost {
        println!(
            "lost {} points of {} (steps {}..={}) from {}",
            c.points,
            crate::cli_runs::escape_controls(&c.series),
            c.first_step,
            c.last_step,
            c.segment.display()
        );
    }
    for w in &r.wal_files_copied {
        println!("copied {} (its readable records are kept)", w.display());
    }
    if let Some(q) = &r.quarantine {
        println!(
            "quarantine: {} (see {})",
            q.display(),
            q.join(loupe_tsdb::NOTE_FILE).display()
        );
    }
}

fn confirm(question: &str) -> Result<bool> {
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}
