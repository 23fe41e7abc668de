//! `loupe-bench codecs`: bytes per value of each column codec on the training
//! corpus, and decode speed of the two that matter most.
//!
//! Compared: Gorilla (the classic TSDB baseline: XOR for floats,
//! delta-of-delta for steps and times), pcodec in pages sharing one chunk's
//! metadata (what Loupe stores, at several page sizes), pcodec over the whole
//! column (the best pcodec can do without random access), and two generic
//! baselines: zstd over the raw little-endian bytes, and Parquet's
//! BYTE_STREAM_SPLIT (byte `k` of every value in stream `k`) then zstd.
//!
//! Every codec's output is decoded and compared bit for bit before its size
//! counts, so a number in the table is never that of a lossy encoding.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use loupe_tsdb::codec::{ColumnValue, decode_paged, encode_paged, gorilla, paged};
use serde_json::json;

use crate::corpus::training_corpus;

/// zstd's default level, the one generic-compressor users get unless they tune it.
const ZSTD_LEVEL: i32 = 3;

/// Page size of the decode-speed measurement; the segment writer's default.
const SPEED_PAGE: usize = 512;

#[derive(clap::Args)]
pub struct Args {
    /// Training steps in the corpus (each step logs five series).
    #[arg(long, default_value_t = 200_000)]
    steps: usize,
    /// Seed of the corpus generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy)]
enum Codec {
    /// XOR for floats, delta-of-delta for integers.
    Gorilla,
    PcoPaged(usize),
    PcoChunk,
    Zstd,
    ByteStreamSplitZstd,
}

const CODECS: [Codec; 8] = [
    Codec::Gorilla,
    Codec::PcoPaged(256),
    Codec::PcoPaged(512),
    Codec::PcoPaged(1024),
    Codec::PcoPaged(4096),
    Codec::PcoChunk,
    Codec::Zstd,
    Codec::ByteStreamSplitZstd,
];

impl Codec {
    fn label(self) -> String {
        match self {
            Codec::Gorilla => "gorilla".into(),
            Codec::PcoPaged(p) => format!("pco/{p}"),
            Codec::PcoChunk => "pco-chunk".into(),
            Codec::Zstd => format!("zstd{ZSTD_LEVEL}"),
            Codec::ByteStreamSplitZstd => format!("bss+zstd{ZSTD_LEVEL}"),
        }
    }

    fn key(self) -> String {
        match self {
            Codec::Gorilla => "gorilla".into(),
            Codec::PcoPaged(p) => format!("pco_paged_{p}"),
            Codec::PcoChunk => "pco_chunk".into(),
            Codec::Zstd => format!("zstd{ZSTD_LEVEL}"),
            Codec::ByteStreamSplitZstd => format!("bss_zstd{ZSTD_LEVEL}"),
        }
    }
}

/// One column of the corpus, as the engine would store it.
enum Column<'a> {
    Float(&'a [f64]),
    Int(&'a [i64]),
}

impl Column<'_> {
    fn len(&self) -> usize {
        match self {
            Column::Float(v) => v.len(),
            Column::Int(v) => v.len(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Column::Float(_) => "f64",
            Column::Int(_) => "i64",
        }
    }

    fn bits(&self) -> Vec<u64> {
        match self {
            Column::Float(v) => bits(v),
            Column::Int(v) => bits(v),
        }
    }
}

fn bits<T: ColumnValue>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits64()).collect()
}

struct Row {
    name: String,
    kind: &'static str,
    values: usize,
    /// Encoded bytes per codec, in the order of [`CODECS`].
    bytes: Vec<usize>,
    is_series: bool,
}

impl Row {
    fn per_value(&self, i: usize) -> f64 {
        self.bytes[i] as f64 / self.values as f64
    }
}

/// What one run measured.
struct Report {
    steps: usize,
    seed: u64,
    n_series: usize,
    points: usize,
    rows: Vec<Row>,
    /// Mean bytes per value over the value series, per codec.
    series_avg: Vec<f64>,
    speed_column: &'static str,
    speed_values: usize,
    /// M values/s decoding the speed column with Gorilla XOR and pcodec pages.
    speed_xor: f64,
    speed_paged: f64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let report = measure_all(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&report))?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn measure_all(args: &Args) -> anyhow::Result<Report> {
    ensure!(args.steps > 0, "--steps must be at least 1");
    ensure!(
        args.steps <= paged::MAX_COLUMN_VALUES,
        "--steps must be at most {} (one column's limit)",
        paged::MAX_COLUMN_VALUES
    );
    let corpus = training_corpus(args.steps, args.seed);

    let mut columns: Vec<(String, Column, bool)> = corpus
        .series
        .iter()
        .map(|s| (s.name.to_string(), Column::Float(&s.values), true))
        .collect();
    columns.push(("step".into(), Column::Int(&corpus.steps), false));
    columns.push(("time_ns".into(), Column::Int(&corpus.times_ns), false));

    let mut rows = Vec::with_capacity(columns.len());
    for (name, col, is_series) in &columns {
        let bytes = CODECS
            .iter()
            .map(|&c| measure(c, col).with_context(|| format!("{} on {name}", c.label())))
            .collect::<anyhow::Result<Vec<_>>>()?;
        rows.push(Row {
            name: name.clone(),
            kind: col.kind(),
            values: col.len(),
            bytes,
            is_series: *is_series,
        });
    }

    // The series have equal lengths, so the mean of bytes per value is also
    // the total bytes over the total points.
    let series: Vec<&Row> = rows.iter().filter(|r| r.is_series).collect();
    let series_avg = (0..CODECS.len())
        .map(|i| series.iter().map(|r| r.per_value(i)).sum::<f64>() / series.len() as f64)
        .collect();

    let loss = corpus
        .series
        .iter()
        .find(|s| s.name == "train/loss")
        .context("the corpus has no train/loss series")?;
    let speed_xor = decode_speed(&loss.values, gorilla::decode_xor, gorilla::encode_xor)?;
    let speed_paged = decode_speed(&loss.values, decode_paged::<f64>, |v| {
        encode_paged(v, SPEED_PAGE)
    })?;

    Ok(Report {
        steps: args.steps,
        seed: args.seed,
        n_series: corpus.series.len(),
        points: corpus.points(),
        rows,
        series_avg,
        speed_column: loss.name,
        speed_values: loss.values.len(),
        speed_xor,
        speed_paged,
    })
}

fn by_codec<V: Into<serde_json::Value>>(
    values: impl IntoIterator<Item = V>,
) -> serde_json::Map<String, serde_json::Value> {
    CODECS
        .iter()
        .zip(values)
        .map(|(c, v)| (c.key(), v.into()))
        .collect()
}

fn to_json(r: &Report) -> serde_json::Value {
    let rows: Vec<_> = r
        .rows
        .iter()
        .map(|row| {
            json!({
                "name": row.name,
                "type": row.kind,
                "values": row.values,
                "is_series": row.is_series,
                "bytes_per_value": by_codec((0..CODECS.len()).map(|i| row.per_value(i))),
                "bytes": by_codec(row.bytes.iter().copied()),
            })
        })
        .collect();
    json!({
        "benchmark": "codecs",
        "steps": r.steps,
        "seed": r.seed,
        "series": r.n_series,
        "points": r.points,
        "gorilla": "XOR for f64 columns, delta-of-delta for i64 columns",
        "columns": rows,
        "series_avg_bytes_per_value": by_codec(r.series_avg.iter().copied()),
        "decode_mvalues_per_s": {
            "column": r.speed_column,
            "values": r.speed_values,
            "gorilla_xor": r.speed_xor,
            format!("pco_paged_{SPEED_PAGE}"): r.speed_paged,
        },
    })
}

fn print_table(r: &Report) {
    println!(
        "codecs: {} steps, {} series ({} points), seed {}; bytes per value (raw: 8)",
        r.steps, r.n_series, r.points, r.seed
    );
    let name_w = r
        .rows
        .iter()
        .map(|row| row.name.len() + row.kind.len() + 3)
        .max()
        .unwrap_or(0)
        .max(20)
        + 2;
    let col_w = CODECS.iter().map(|c| c.label().len()).max().unwrap_or(0) + 2;
    let mut header = format!("{:<name_w$}", "column");
    for c in CODECS {
        header += &format!("{:>col_w$}", c.label());
    }
    let rule = "-".repeat(header.len());
    let print_row = |label: &str, vals: &mut dyn Iterator<Item = f64>| {
        let mut line = format!("{label:<name_w$}");
        for v in vals {
            line += &format!("{v:>col_w$.3}");
        }
        println!("{line}");
    };
    println!("{header}\n{rule}");
    let mut in_series = true;
    for row in &r.rows {
        if in_series && !row.is_series {
            println!("{rule}");
            in_series = false;
        }
        let label = format!("{} ({})", row.name, row.kind);
        print_row(&label, &mut (0..CODECS.len()).map(|i| row.per_value(i)));
    }
    println!("{rule}");
    print_row(
        &format!("avg of {} series", r.n_series),
        &mut r.series_avg.iter().copied(),
    );
    println!();
    println!("gorilla = XOR for f64 columns, delta-of-delta for i64 columns");
    println!("every codec round-tripped bit-exactly on every column");
    println!();
    println!(
        "decode speed on {} ({} values):",
        r.speed_column, r.speed_values
    );
    println!("  gorilla XOR      {:>8.1} M values/s", r.speed_xor);
    println!(
        "  pco paged {SPEED_PAGE:<6} {:>8.1} M values/s",
        r.speed_paged
    );
}

/// Encodes `col` with `codec`, checks the decoded bits equal the input's, and
/// returns the encoded size.
fn measure(codec: Codec, col: &Column) -> anyhow::Result<usize> {
    let want = col.bits();
    let (size, got) = match (codec, col) {
        (Codec::Gorilla, Column::Float(v)) => {
            let enc = gorilla::encode_xor(v);
            (enc.len(), bits(&gorilla::decode_xor(&enc)?))
        }
        (Codec::Gorilla, Column::Int(v)) => {
            let enc = gorilla::encode_dod(v);
            (enc.len(), bits(&gorilla::decode_dod(&enc)?))
        }
        (Codec::PcoPaged(page), Column::Float(v)) => pco_paged(v, page)?,
        (Codec::PcoPaged(page), Column::Int(v)) => pco_paged(v, page)?,
        (Codec::PcoChunk, Column::Float(v)) => pco_chunk(v)?,
        (Codec::PcoChunk, Column::Int(v)) => pco_chunk(v)?,
        (Codec::Zstd, _) => {
            let raw = le_bytes(&want);
            let enc = zstd::bulk::compress(&raw, ZSTD_LEVEL)?;
            let dec = zstd::bulk::decompress(&enc, raw.len())?;
            (enc.len(), from_le_bytes(&dec)?)
        }
        (Codec::ByteStreamSplitZstd, _) => {
            let split = byte_stream_split(&want);
            let enc = zstd::bulk::compress(&split, ZSTD_LEVEL)?;
            let dec = zstd::bulk::decompress(&enc, split.len())?;
            (enc.len(), byte_stream_join(&dec)?)
        }
    };
    check_exact(&want, &got)?;
    Ok(size)
}

fn pco_paged<T: ColumnValue>(v: &[T], page: usize) -> anyhow::Result<(usize, Vec<u64>)> {
    let enc = encode_paged(v, page);
    Ok((enc.len(), bits(&decode_paged::<T>(&enc)?)))
}

fn pco_chunk<T: ColumnValue>(v: &[T]) -> anyhow::Result<(usize, Vec<u64>)> {
    let enc = pco::standalone::simple_compress(v, &pco::ChunkConfig::default())?;
    let dec = pco::standalone::simple_decompress::<T>(&enc)?;
    Ok((enc.len(), bits(&dec)))
}

fn check_exact(want: &[u64], got: &[u64]) -> anyhow::Result<()> {
    if want.len() != got.len() {
        bail!(
            "round trip gave {} values for {} encoded",
            got.len(),
            want.len()
        );
    }
    if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
        bail!(
            "round trip is not bit-exact at value {i}: {:#018x} became {:#018x}",
            want[i],
            got[i]
        );
    }
    Ok(())
}

fn le_bytes(bits: &[u64]) -> Vec<u8> {
    bits.iter().flat_map(|b| b.to_le_bytes()).collect()
}

fn from_le_bytes(bytes: &[u8]) -> anyhow::Result<Vec<u64>> {
    let words = bytes.chunks_exact(8);
    ensure!(
        words.remainder().is_empty(),
        "{} bytes is not whole u64s",
        bytes.len()
    );
    Ok(words
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

/// Parquet's BYTE_STREAM_SPLIT: byte `k` of every value goes to stream `k`,
/// so the slowly-changing sign and exponent bytes sit together where a
/// generic compressor can find their repeats.
fn byte_stream_split(bits: &[u64]) -> Vec<u8> {
    let n = bits.len();
    let mut out = vec![0u8; n * 8];
    for (i, b) in bits.iter().enumerate() {
        for (k, byte) in b.to_le_bytes().into_iter().enumerate() {
            out[k * n + i] = byte;
        }
    }
    out
}

fn byte_stream_join(bytes: &[u8]) -> anyhow::Result<Vec<u64>> {
    let n = bytes.len() / 8;
    ensure!(
        n * 8 == bytes.len(),
        "{} bytes is not whole u64s",
        bytes.len()
    );
    Ok((0..n)
        .map(|i| u64::from_le_bytes(std::array::from_fn(|k| bytes[k * n + i])))
        .collect())
}

/// Millions of values decoded per second: the best of several timed runs,
/// which is the least disturbed by whatever else the machine is doing.
fn decode_speed(
    values: &[f64],
    decode: impl Fn(&[u8]) -> loupe_tsdb::Result<Vec<f64>>,
    encode: impl Fn(&[f64]) -> Vec<u8>,
) -> anyhow::Result<f64> {
    let enc = encode(values);
    check_exact(&bits(values), &bits(&decode(&enc)?))?;
    let mut best = Duration::MAX;
    let (mut runs, started) = (0, Instant::now());
    while runs < 5 || started.elapsed() < Duration::from_millis(500) {
        let t = Instant::now();
        black_box(decode(black_box(&enc))?);
        best = best.min(t.elapsed());
        runs += 1;
    }
    Ok(values.len() as f64 / best.as_secs_f64() / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_stream_split_round_trips() {
        let v = [0x0102_0304_0506_0708u64, u64::MAX, 0, 0xdead_beef];
        let split = byte_stream_split(&v);
        assert_eq!(&split[..4], &[0x08, 0xff, 0x00, 0xef]);
        assert_eq!(byte_stream_join(&split).unwrap(), v);
    }

    #[test]
    fn every_codec_round_trips_a_small_corpus() {
        let corpus = training_corpus(3000, 1);
        for c in CODECS {
            measure(c, &Column::Float(&corpus.series[0].values)).unwrap();
            measure(c, &Column::Int(&corpus.times_ns)).unwrap();
        }
    }

    #[test]
    fn a_mismatch_is_reported() {
        let err = check_exact(&[1, 2, 3], &[1, 2, 4]).unwrap_err().to_string();
        assert!(err.contains("value 2"), "{err}");
    }
}
