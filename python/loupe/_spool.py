"""The spool: an append-only file of API request bodies that could not be
sent yet, and the marker saying how far it has been uploaded.

``spool.jsonl`` holds one JSON object per line::

    {"kind":"metrics","seq":7,"body":{"series":[...]}}

``kind`` says where ``body`` goes: ``run`` (POST /api/v1/runs: create or
resume), ``metrics`` (POST /api/v1/runs/{id}/metrics), ``logs`` (POST
/api/v1/runs/{id}/logs) or ``patch`` (PATCH /api/v1/runs/{id}). ``body`` is
the exact request body. ``seq`` grows by one per line. A log batch also has
``"key"`` (before ``body``): its ``Idempotency-Key``, made when the batch was
made, so that every send of it — the first, a retry, a replay from this file
by the SDK or by ``loupe sync`` — carries the same key and the server stores
its lines once::

    {"kind":"logs","seq":8,"key":"3f9c0a1b2c4d:12","body":{"records":[...]}}

``acked`` is ``{"seq": N, "offset": B}``: every line up to seq N (ending at
byte B) was acknowledged by the server. It is replaced atomically (write,
fsync, rename) after each acknowledged upload, so each line is uploaded once.
A line torn by a crash in mid-write has no newline; it is cut off before the
next append and never read.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Iterator, List, Optional, Tuple

SPOOL = "spool.jsonl"
ACKED = "acked"

KINDS = ("run", "metrics", "logs", "patch")

_LINE = re.compile(rb'^\{"kind":"([a-z]+)","seq":(\d+),(?:"key":"([A-Za-z0-9_.:-]{1,128})",)?"body":')
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")

# (seq, kind, body bytes, offset just past the line, idempotency key or None)
Entry = Tuple[int, str, bytes, int, Optional[str]]


class SpoolError(Exception):
    pass


def parse_line(line: bytes) -> Optional[Tuple[int, str, bytes]]:
    """(seq, kind, body) of one complete line, or None if it is not one."""
    r = parse_record(line)
    return None if r is None else r[:3]


def parse_record(line: bytes) -> Optional[Tuple[int, str, bytes, Optional[str]]]:
    """(seq, kind, body, key) of one complete line, or None if it is not one."""
    m = _LINE.match(line)
    if m is not None and line.endswith(b"}\n"):
        kind = m.group(1).decode("ascii")
        if kind in KINDS:
            key = m.group(3)
            return int(m.group(2)), kind, line[m.end() : -2], key.decode("ascii") if key else None
    # Written by someone else (or by hand): the slow, general way.
    try:
        obj = json.loads(line)
        kind, seq, body = obj["kind"], obj["seq"], obj["body"]
        if kind not in KINDS or not isinstance(seq, int) or not isinstance(body, dict):
            return None
        key = obj.get("key")
        if not (isinstance(key, str) and _KEY.match(key)):
            key = None
        return seq, kind, json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"), key
    except Exception:
        return None


def format_line(kind: str, seq: int, body: bytes, key: Optional[str] = None) -> bytes:
    if key:
        return b'{"kind":"%s","seq":%d,"key":"%s","body":%s}\n' % (kind.encode("ascii"), seq, key.encode("ascii"),
                                                                   body)
    return b'{"kind":"%s","seq":%d,"body":%s}\n' % (kind.encode("ascii"), seq, body)


class Spool:
    """One run directory's spool. Not thread-safe: the caller serialises."""

    def __init__(self, directory: str, fsync_interval: float = 1.0):
        self.dir = directory
        self.path = os.path.join(directory, SPOOL)
        self.acked_path = os.path.join(directory, ACKED)
        self.fsync_interval = fsync_interval
        self._fd: Optional[int] = None
        self._dirty = False
        self._last_fsync = 0.0
        self.size = 0  # bytes of complete lines
        self.last_seq = 0  # seq of the last complete line, 0 when none
        self.acked_seq = 0
        self.acked_offset = 0
        self._load()

    # --- reading the state --------------------------------------------------

    def _load(self) -> None:
        try:
            size = os.path.getsize(self.path)
        except OSError:
            size = 0
        complete = size
        if size:
            with open(self.path, "rb") as f:
                complete = _complete_size(f, size)
                self.last_seq = _last_seq(f, complete)
        self.size = complete
        seq, off = _read_acked(self.acked_path)
        if seq <= 0:
            self.acked_seq, self.acked_offset = 0, 0
            return
        if seq >= self.last_seq:
            self.acked_seq, self.acked_offset = self.last_seq, self.size
            return
        if 0 <= off <= self.size and self._seq_at(off) > seq:
            self.acked_seq, self.acked_offset = seq, off
            return
        # The marker's offset does not fit the file: find the line by seq.
        self.acked_seq, self.acked_offset = seq, 0
        for e in self._iter(0):
            if e[0] > seq:
                break
            self.acked_offset = e[3]

    def _seq_at(self, off: int) -> int:
        for e in self._iter(off, max_entries=1):
            return e[0]
        return 1 << 62

    def _iter(self, offset: int, max_entries: int = 1 << 62, max_bytes: int = 1 << 62) -> Iterator[Entry]:
        if offset >= self.size:
            return
        with open(self.path, "rb") as f:
            f.seek(offset)
            pos = offset
            n = 0
            used = 0
            while pos < self.size and n < max_entries and used < max_bytes:
                line = f.readline()
                if not line.endswith(b"\n"):
                    return
                pos += len(line)
                parsed = parse_record(line)
                if parsed is None:
                    # A damaged line costs that line, not the rest.
                    continue
                seq, kind, body, key = parsed
                n += 1
                used += len(body)
                yield seq, kind, body, pos, key

    def pending(self) -> bool:
        return self.last_seq > self.acked_seq

    def unacked(self, max_entries: int = 64, max_bytes: int = 8 << 20) -> List[Entry]:
        """The next entries after the acknowledged ones, in order."""
        out = []
        for e in self._iter(self.acked_offset, max_entries, max_bytes):
            if e[0] > self.acked_seq:
                out.append(e)
        return out

    def all_unacked(self) -> Iterator[Entry]:
        for e in self._iter(self.acked_offset):
            if e[0] > self.acked_seq:
                yield e

    # --- writing --------------------------------------------------------------

    def _open(self) -> int:
        if self._fd is None:
            os.makedirs(self.dir, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            # Cut a line torn by a crash, so the next line starts clean.
            actual = os.fstat(fd).st_size
            if actual != self.size:
                os.ftruncate(fd, self.size)
            self._fd = fd
        return self._fd

    def append(self, kind: str, body: bytes, key: Optional[str] = None) -> int:
        fd = self._open()
        seq = self.last_seq + 1
        line = format_line(kind, seq, body, key)
        view = memoryview(line)
        try:
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError:
            # Disk full, say: take the partial line back so that the file
            # stays whole lines and the offsets stay true.
            try:
                os.ftruncate(fd, self.size)
            except OSError:
                pass
            raise
        self.last_seq = seq
        self.size += len(line)
        self._dirty = True
        return seq

    def maybe_fsync(self, force: bool = False) -> None:
        if not self._dirty or self._fd is None:
            return
        now = time.monotonic()
        if force or now - self._last_fsync >= self.fsync_interval:
            try:
                os.fsync(self._fd)
            except OSError:
                pass
            self._dirty = False
            self._last_fsync = now

    def ack(self, seq: int, offset: int) -> None:
        """Records that every line up to ``seq`` (ending at ``offset``) was
        acknowledged: written before the next upload starts."""
        if seq <= self.acked_seq:
            return
        self.acked_seq, self.acked_offset = seq, offset
        tmp = self.acked_path + ".tmp"
        data = json.dumps({"seq": seq, "offset": offset}).encode("ascii")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.acked_path)

    def close(self) -> None:
        self.maybe_fsync(force=True)
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None


def _read_acked(path: str) -> Tuple[int, int]:
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read())
        seq, off = int(obj.get("seq", 0)), int(obj.get("offset", -1))
        return seq, off
    except (OSError, ValueError, AttributeError, TypeError):
        return 0, -1


def _complete_size(f, size: int) -> int:
    """Bytes up to and including the last newline."""
    pos = size
    block = 64 * 1024
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        chunk = f.read(pos - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def _last_seq(f, complete: int) -> int:
    """Seq of the last parseable line before ``complete``."""
    end = complete
    while end > 0:
        # Find the start of the line ending at `end`.
        pos = end - 1
        start = 0
        block = 64 * 1024
        while pos > 0:
            lo = max(0, pos - block)
            f.seek(lo)
            chunk = f.read(pos - lo)
            i = chunk.rfind(b"\n")
            if i >= 0:
                start = lo + i + 1
                break
            pos = lo
        f.seek(start)
        line = f.read(end - start)
        parsed = parse_line(line)
        if parsed is not None:
            return parsed[0]
        end = start
    return 0
