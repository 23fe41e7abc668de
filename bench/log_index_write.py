#!/usr/bin/env python3
"""What writing log lines costs with each way of keeping the search index.

The log store (crates/loupe-meta, `log` + the external-content FTS5 table
`log_fts`) indexes lines with FTS5's trigram tokenizer so that search finds
substrings and phrases. This measures, on Python's own SQLite, the CPU per
line of appending batches of 10,000 lines (the server's transaction per
request) under each option, and checks that every option that is kept
answers the same searches as the current index:

  - no index, and the word index (unicode61) the trigram index replaced;
  - trigram, indexed per line from an AFTER INSERT trigger (schema V4);
  - trigram, indexed per batch with one INSERT … SELECT over the batch's
    rowid range (schema V5, `logs::index_lines`);
  - FTS5 knobs: automerge 0, crisismerge 64, columnsize=0, larger
    transactions, detail=column / detail=none (these two cannot answer
    phrase queries, which substring search of more than 3 characters is:
    FTS5 refuses them with "phrase queries are not supported").

    python3 bench/log_index_write.py [--lines 200000] [--repeats 2]

Standard library only; CPU time (process_time), so a busy machine skews it
less than wall time.
"""

import argparse
import random
import sqlite3
import time

TRIGRAM = "tokenize='trigram case_sensitive 0'"
WORDS = "loss step lr grad_norm epoch tokens throughput rank worker dataloader checkpoint saved eval accuracy".split()
QUERIES = ['"OutOfMemory"', '"loss 4.8"', '"checkpoint"', '"step 1999"', '"lr 0.0001"']


def lines_of(n):
    rnd = random.Random(1)
    out = [
        f"step {i} loss {rnd.random() * 5:.4f} lr {rnd.random() * 1e-3:.6f} grad_norm {rnd.random() * 3:.3f} "
        f"tokens/s {rnd.randint(1000, 90000)} {rnd.choice(WORDS)}"
        for i in range(n)
    ]
    out[n // 2] = f"torch.OutOfMemoryError: CUDA out of memory at step {n // 2}"
    return out


def build(lines, fts, per_batch, batch, pragmas=()):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE log(id INTEGER PRIMARY KEY, text TEXT)")
    if fts is not None:
        db.execute(f"CREATE VIRTUAL TABLE log_fts USING fts5(text, content='log', content_rowid='id', {fts})")
        for p in pragmas:
            db.execute(p)
        if not per_batch:
            db.execute("CREATE TRIGGER ins AFTER INSERT ON log BEGIN INSERT INTO log_fts(rowid, text) VALUES (new.id, new.text); END")
    t = time.process_time()
    for s in range(0, len(lines), batch):
        chunk = lines[s : s + batch]
        with db:
            db.executemany("INSERT INTO log(id, text) VALUES (?, ?)", [(s + i + 1, x) for i, x in enumerate(chunk)])
            if fts is not None and per_batch:
                db.execute("INSERT INTO log_fts(rowid, text) SELECT id, text FROM log WHERE id BETWEEN ? AND ?", (s + 1, s + len(chunk)))
    return db, (time.process_time() - t) / len(lines) * 1e6


def answers(db):
    out = {}
    for q in QUERIES:
        try:
            t = time.perf_counter()
            ids = [r[0] for r in db.execute("SELECT rowid FROM log_fts WHERE log_fts MATCH ? ORDER BY rowid", (q,))]
            out[q] = (ids, (time.perf_counter() - t) * 1e3)
        except sqlite3.OperationalError as e:
            out[q] = (str(e), 0.0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    lines = lines_of(a.lines)
    merge = lambda k, v: f"INSERT INTO log_fts(log_fts, rank) VALUES('{k}', {v})"  # noqa: E731
    options = [
        ("no index", None, False, 10_000, ()),
        ("unicode61 words (before V4)", "tokenize='unicode61 remove_diacritics 2'", False, 10_000, ()),
        ("trigram, per-line trigger (V4)", TRIGRAM, False, 10_000, ()),
        ("trigram, per-batch INSERT…SELECT (V5)", TRIGRAM, True, 10_000, ()),
        ("trigram, trigger, 50k-line transactions", TRIGRAM, False, 50_000, ()),
        ("trigram, trigger, automerge 0", TRIGRAM, False, 10_000, (merge("automerge", 0),)),
        ("trigram, trigger, crisismerge 64", TRIGRAM, False, 10_000, (merge("crisismerge", 64),)),
        ("trigram, trigger, columnsize=0", TRIGRAM + ", columnsize=0", False, 10_000, ()),
        ("trigram, trigger, detail=column", TRIGRAM + ", detail=column", False, 10_000, ()),
        ("trigram, trigger, detail=none", TRIGRAM + ", detail=none", False, 10_000, ()),
    ]
    print(f"SQLite {sqlite3.sqlite_version}, {a.lines} lines, batches of 10,000 unless said")
    reference = None
    for name, fts, per_batch, batch, pragmas in options:
        costs = []
        for _ in range(a.repeats):
            db, us = build(lines, fts, per_batch, batch, pragmas)
            costs.append(us)
        got = answers(db) if fts is not None else None
        if name.endswith("(V4)"):
            reference = {q: ids for q, (ids, _) in got.items()}
        note = ""
        if got is not None:
            errors = {ids for ids, _ in got.values() if isinstance(ids, str)}
            ms = " ".join(f"{q}={ms:.1f}ms" for q, (_, ms) in got.items())
            if errors:
                note = f"searches fail: {errors.pop()}"
            elif reference is not None and "trigram" in name:
                same = all(got[q][0] == reference[q] for q in QUERIES)
                note = f"{'same answers as V4' if same else 'DIFFERENT answers from V4'}; {ms}"
            else:
                note = ms
        print(f"{name:42s} {min(costs):6.1f} µs CPU/line  {note}", flush=True)


if __name__ == "__main__":
    main()
