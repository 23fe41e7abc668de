#!/usr/bin/env python3
"""Scores Loupe's general anomaly detector on the Numenta Anomaly Benchmark.

Runs `loupe detect` on each of NAB's 58 data files (with one global
configuration: `--set anomaly.method=<detector>` and any `--set` given
here), writes `results/<name>/<category>/<name>_<file>.csv` into a
temporary copy of the NAB folder, runs NAB's own scorer there (threshold
optimisation, scoring, normalisation) and prints the three profile scores.

NAB's scorer is AGPL and is only *run*, from the copy, never imported.
It needs a Python with pandas 1.5.3, numpy<2, scipy and simplejson
(`--python`, default: this interpreter).

    python3 bench/nab.py --loupe-bin target/release/loupe \
        [--detector seasonal|discord|ensemble] [--nab ../shared/bench-data/nab] \
        [--python /tmp/nabenv/bin/python] [--set anomaly.short_window=10]

Builds nothing; `LOUPE_BIN` works instead of `--loupe-bin`.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_NAB = HERE.parent.parent / "shared" / "bench-data" / "nab"
PROFILES = ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loupe-bin", default=os.environ.get("LOUPE_BIN"))
    p.add_argument("--detector", default="seasonal",
                   help="anomaly.method: seasonal (default), discord or ensemble")
    p.add_argument("--nab", default=str(DEFAULT_NAB), help="NAB's folder (read-only)")
    p.add_argument("--python", default=sys.executable,
                   help="a Python with NAB's scorer dependencies")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="more loupe diagnosis settings, for every file alike")
    p.add_argument("--keep", action="store_true", help="keep the temporary NAB copy")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    if not a.loupe_bin:
        p.error("give --loupe-bin or LOUPE_BIN")
    return a


def data_files(nab: Path):
    for cat in sorted(p for p in (nab / "data").iterdir() if p.is_dir()):
        for f in sorted(cat.glob("*.csv")):
            yield cat.name, f


def detect_one(args, work: Path, name: str, cat: str, src: Path) -> float:
    """Runs `loupe detect` on one file; writes NAB's result file."""
    out = work / "results" / name / cat / f"{name}_{src.name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [args.loupe_bin, "detect", str(src), "--out", str(out),
           "--set", f"anomaly.method={args.detector}"]
    for s in args.set:
        cmd += ["--set", s]
    start = time.monotonic()
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    took = time.monotonic() - start
    # NAB's result files carry the label column of its null results.
    null = work / "results" / "null" / cat / f"null_{src.name}"
    labels = [l.rsplit(",", 1)[-1] for l in null.read_text().splitlines()[1:]]
    rows = out.read_text().splitlines()
    lines = ["timestamp,value,anomaly_score,label"]
    for i, row in enumerate(rows[1:]):
        ts, value, score, _label = row.split(",")
        lines.append(f"{ts},{value},{score},{labels[i] if i < len(labels) else 0}")
    out.write_text("\n".join(lines) + "\n")
    return took


def main():
    args = parse_args()
    name = f"loupe{args.detector.capitalize()}"
    with tempfile.TemporaryDirectory(prefix="nab-") as tmp:
        work = Path(tmp) / "nab"
        shutil.copytree(args.nab, work, ignore=shutil.ignore_patterns(".git"))
        for p in [work, *work.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
        files = list(data_files(Path(args.nab)))
        with ThreadPoolExecutor(max_workers=args.jobs) as ex:
            took = sum(ex.map(lambda cf: detect_one(args, work, name, *cf), files))
        thresholds = work / "config" / f"thresholds_{name}.json"
        thresholds.write_text("{}")
        subprocess.run(
            [args.python, "run.py", "-d", name, "--optimize", "--score", "--normalize",
             "--skipConfirmation", "-t", str(thresholds), "-n", "1"],
            cwd=work, check=True, stdout=subprocess.DEVNULL)
        scores = json.loads((work / "results" / "final_results.json").read_text())[name]
        chosen = json.loads(thresholds.read_text()).get(name, {})
        print(f"detector {args.detector} ({name}), {len(files)} files, "
              f"loupe detect {took:.1f} s in all")
        for prof in PROFILES:
            thr = chosen.get(prof, {}).get("threshold")
            print(f"  {prof:20s} {scores[prof]:6.1f}   (threshold {thr})")
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="nab-kept-"))
            shutil.copytree(work, kept / "nab")
            print(f"kept in {kept / 'nab'}")


if __name__ == "__main__":
    main()
