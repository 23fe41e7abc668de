"""Getting batches to the server: the transport (one request, with the
server's answers sorted into done / try again), and the pipeline (a
collector thread that turns the run's buffers into request bodies, and an
uploader thread that sends them, or the spool when sending fails)."""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import zlib
from collections import deque
from typing import Callable, Deque, List, Optional, Tuple

from ._http import Client, TransportError
from ._spool import Spool

_logger = logging.getLogger("loupe")

# (kind, body, idempotency key or None): log batches carry a key from the
# moment they are made, so every send of one (retries, spool replays) is
# recognised by the server as the same batch.
Item = Tuple[str, bytes, Optional[str]]

MERGEABLE = {"metrics": (b'{"series":[', b"]}"), "logs": (b'{"records":[', b"]}")}


def gzip(data: bytes) -> bytes:
    c = zlib.compressobj(1, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def merge_bodies(kind: str, bodies: List[bytes]) -> Optional[bytes]:
    """One request body for several batches of the same kind, or None."""
    head, tail = MERGEABLE[kind]
    parts = []
    for b in bodies:
        if not (b.startswith(head) and b.endswith(tail)):
            return None
        inner = b[len(head) : -len(tail)]
        if inner:
            parts.append(inner)
    return head + b",".join(parts) + tail


def next_request(entries: list, i: int, max_bytes: int = 8 << 20) -> Tuple[int, str, bytes, Optional[str]]:
    """Spool entries ``i``..``j-1`` as one request: ``(j, kind, body, key)``.

    Consecutive batches of a mergeable kind are merged into one body, except
    log batches that carry an idempotency key: each of those goes alone,
    under its own key, because a merged body's key would change whenever
    the merge did (a retry that finds more lines in the spool) and the
    server would store the lines again."""
    _seq, kind, body, _end, key = entries[i]
    if key is not None or kind not in MERGEABLE:
        return i + 1, kind, body, key
    j = i + 1
    size = len(body)
    while (j < len(entries) and entries[j][1] == kind and entries[j][4] is None
           and size + len(entries[j][2]) < max_bytes):
        size += len(entries[j][2])
        j += 1
    if j - i == 1:
        return j, kind, body, None
    merged = merge_bodies(kind, [e[2] for e in entries[i:j]])
    if merged is None:
        return i + 1, kind, body, None
    return j, kind, merged, None


def as_item(item: tuple) -> Item:
    return item if len(item) == 3 else (item[0], item[1], None)  # type: ignore[return-value]


class Transport:
    """Sends one body to where its kind goes.

    ``send`` answers True when the server is done with the body (it took it,
    or refused it for good and it was set aside in ``rejected.jsonl``), and
    False when it should be tried again later.
    """

    def __init__(
        self,
        client: Client,
        run_id: str,
        create_body: Optional[bytes],
        run_dir: Optional[str] = None,
        compress: bool = True,
    ):
        self.client = client
        self.run_id = run_id
        self.create_body = create_body
        self.run_dir = run_dir
        self.compress = compress
        self.last_error: Optional[str] = None
        self._warned: set = set()
        self.sent_requests = 0

    def _target(self, kind: str) -> Tuple[str, str]:
        rid = self.run_id
        if kind == "metrics":
            return "POST", "/api/v1/runs/%s/metrics" % rid
        if kind == "logs":
            return "POST", "/api/v1/runs/%s/logs" % rid
        if kind == "patch":
            return "PATCH", "/api/v1/runs/%s" % rid
        return "POST", "/api/v1/runs"

    def request(self, kind: str, body: bytes, key: Optional[str] = None) -> Tuple[int, bytes]:
        method, path = self._target(kind)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        # The run endpoints read plain JSON; the ingest endpoints take gzip.
        if self.compress and kind in ("metrics", "logs") and len(body) >= 512:
            body = gzip(body)
            headers["Content-Encoding"] = "gzip"
        self.sent_requests += 1
        return self.client.request(method, path, body, headers)

    def send(self, kind: str, body: bytes, key: Optional[str] = None, _depth: int = 0) -> bool:
        try:
            status, data = self.request(kind, body, key)
        except TransportError as e:
            self._fail(str(e))
            return False
        except Exception as e:  # never let a surprise kill the thread
            self._fail("%s: %s" % (type(e).__name__, e))
            return False
        if 200 <= status < 300:
            self.last_error = None
            return True
        if status == 404 and kind != "run" and _depth == 0:
            # The server does not know the run (a fresh data directory, or the
            # create went to the spool): create it, then try once more.
            if self.create_body is not None and self.send("run", self.create_body, None, 1):
                return self.send(kind, body, key, 1)
            return False
        if status in (400, 413, 415, 422):
            return self._refused(kind, body, key, status, data, _depth)
        if status == 404 and kind == "run":
            self._warn_once("run-404", "the server refuses run %s (%s): is the id another project's?" % (
                self.run_id, _message(data)))
        if status in (401, 403):
            self._warn_once(
                "auth",
                "the server refused the token (%d %s); data is kept in the spool: fix LOUPE_TOKEN and run "
                "`python -m loupe sync %s`" % (status, _message(data), self.run_dir or "DIR"),
            )
        self._fail("HTTP %d %s" % (status, _message(data)))
        return False

    def _fail(self, why: str) -> None:
        self.last_error = why

    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            _logger.warning("loupe: %s", msg)

    def _refused(self, kind: str, body: bytes, key: Optional[str], status: int, data: bytes, depth: int) -> bool:
        """The server refused the body as malformed: send what it will take
        (halving the batch to find the bad part) and set the rest aside."""
        if depth > 40:
            return self._set_aside(kind, body, status, data)
        try:
            obj = json.loads(body)
        except ValueError:
            return self._set_aside(kind, body, status, data)
        halves: List[bytes] = []
        if kind == "metrics":
            series = obj.get("series") or []
            if len(series) > 1:
                m = len(series) // 2
                halves = [_dumps({"series": series[:m]}), _dumps({"series": series[m:]})]
            elif len(series) == 1 and len(series[0].get("value") or []) > 1:
                s = series[0]
                m = len(s["value"]) // 2
                a, b = dict(s), dict(s)
                for col in ("step", "time", "value"):
                    if isinstance(s.get(col), list):
                        a[col], b[col] = s[col][:m], s[col][m:]
                halves = [_dumps({"series": [a]}), _dumps({"series": [b]})]
        elif kind == "logs":
            recs = obj.get("records") or []
            if len(recs) > 1:
                m = len(recs) // 2
                halves = [_dumps({"records": recs[:m]}), _dumps({"records": recs[m:]})]
        elif kind == "run" and isinstance(obj, dict):
            # Without the run nothing else can be stored: fall back to the
            # fields that cannot be wrong.
            minimal = {k: obj[k] for k in ("id", "project") if k in obj}
            if minimal != obj:
                self._set_aside(kind, body, status, data)
                return self.send("run", _dumps(minimal), None, depth + 1)
            if "project" in minimal:
                return self.send("run", _dumps({"id": obj["id"]}), None, depth + 1)
        if not halves:
            return self._set_aside(kind, body, status, data)
        for n, h in enumerate(halves):
            # The halves are cut the same way on every try, so their keys
            # (the batch's, plus .0 or .1) are as stable as the batch's.
            if not self.send(kind, h, _half_key(key, n), depth + 1):
                return False
        return True

    def _set_aside(self, kind: str, body: bytes, status: int, data: bytes) -> bool:
        msg = _message(data)
        self._warn_once("refused-%s-%d" % (kind, status), "the server refused a %s batch (%d %s); it is kept in %s" % (
            kind, status, msg, os.path.join(self.run_dir or ".", "rejected.jsonl")))
        if self.run_dir:
            try:
                line = b'{"kind":"%s","status":%d,"error":%s,"body":%s}\n' % (
                    kind.encode(), status, json.dumps(msg).encode(), body)
                with open(os.path.join(self.run_dir, "rejected.jsonl"), "ab") as f:
                    f.write(line)
            except OSError:
                pass
        return True

    def heartbeat(self) -> None:
        try:
            self.client.request(
                "PATCH", "/api/v1/runs/%s" % self.run_id, b'{"heartbeat":true}', {"Content-Type": "application/json"}
            )
        except Exception:
            pass


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _half_key(key: Optional[str], n: int) -> Optional[str]:
    if key is None or len(key) > 126:
        return None
    return "%s.%d" % (key, n)


def _message(data: bytes) -> str:
    try:
        obj = json.loads(data)
        return str(obj["error"]["message"])[:500]
    except Exception:
        return data[:200].decode("utf-8", "replace")


class _SpoolWriteError(Exception):
    def __init__(self, done: int, error: OSError):
        super().__init__(str(error))
        self.done = done
        self.error = error


class Pipeline:
    """The two background threads of a run and the state they share.

    Order is kept end to end: while anything is in the spool, new batches go
    behind it in the spool, and the uploader reads the spool in order.
    """

    def __init__(
        self,
        drain: Callable[[], List[Item]],
        spool: Spool,
        transport: Optional[Transport],
        wake: threading.Event,
        interval: float = 0.5,
        max_buffer_bytes: int = 50 << 20,
        slow_after: float = 5.0,
        heartbeat_interval: float = 30.0,
        backoff_cap: float = 30.0,
    ):
        self._drain = drain
        self.spool = spool
        self.transport = transport
        self.offline = transport is None
        self._wake = wake
        self.interval = interval
        self.max_buffer_bytes = max_buffer_bytes
        self.slow_after = slow_after
        self.heartbeat_interval = heartbeat_interval
        self.backoff_cap = backoff_cap

        self._cv = threading.Condition(threading.Lock())
        self._queue: Deque[Item] = deque()
        self._queue_bytes = 0
        self.spool_mode = self.offline or spool.pending()
        self._inflight: Optional[Item] = None
        self._inflight_since = 0.0
        self._inflight_spilled: Optional[Tuple[int, int]] = None  # (seq, end offset)
        self._stop = False
        self._closing = False
        self._final = False
        self._gave_up = False
        self._backoff = 0.0
        self._retry_at = 0.0
        self._created = False
        self._next_heartbeat = time.monotonic() + heartbeat_interval
        self._cycles = 0
        self.spooled_batches = 0
        self._warned_spool = False

        self._collector = threading.Thread(target=self._collect_loop, name="loupe-collector", daemon=True)
        self._uploader = None
        if not self.offline:
            self._uploader = threading.Thread(target=self._upload_loop, name="loupe-uploader", daemon=True)

    def start(self, first: Optional[Item] = None) -> None:
        if first is not None:
            self.submit([first])
        self._collector.start()
        if self._uploader is not None:
            self._uploader.start()

    # --- the collector --------------------------------------------------------

    def _collect_loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            final = self._final
            try:
                items = self._drain()
                if items:
                    self.submit(items)
            except Exception as e:  # a bug here must not stop collection
                _logger.warning("loupe: collecting a batch failed: %s: %s", type(e).__name__, e)
            with self._cv:
                try:
                    self.spool.maybe_fsync()
                except Exception:
                    pass
                self._cycles += 1
                self._cv.notify_all()
            if final:
                return

    def submit(self, items: List[tuple]) -> None:
        items = [as_item(it) for it in items]
        with self._cv:
            try:
                if self.spool_mode:
                    self._spool_items(items)
                else:
                    size = sum(len(it[1]) for it in items)
                    slow = self._inflight is not None and time.monotonic() - self._inflight_since > self.slow_after
                    if slow or self._queue_bytes + size > self.max_buffer_bytes:
                        self._enter_spool_mode(None)
                        self._spool_items(items)
                        self.spool_mode = True
                    else:
                        self._queue.extend(items)
                        self._queue_bytes += size
            except _SpoolWriteError as e:
                # The disk refused too: keep what it did not take in memory,
                # bounded, behind what waits there already.
                _logger.warning("loupe: cannot write the spool in %s: %s", self.spool.dir, e.error)
                rest = items[e.done :]
                if self._queue_bytes < self.max_buffer_bytes:
                    self._queue.extend(rest)
                    self._queue_bytes += sum(len(it[1]) for it in rest)
                else:
                    _logger.warning("loupe: dropped %d batch(es): no server, no disk, memory bound reached", len(rest))
            self._cv.notify_all()

    def _spool_items(self, items: List[Item]) -> None:
        for i, (kind, body, key) in enumerate(items):
            try:
                self.spool.append(kind, body, key)
            except OSError as e:
                raise _SpoolWriteError(i, e) from None
            self.spooled_batches += 1
        try:
            self.spool.maybe_fsync()
        except OSError:
            pass

    def _enter_spool_mode(self, failed: Optional[Item]) -> None:
        """Moves what waits in memory to the spool, in order. Called with
        the lock held."""
        if self.spool_mode and failed is None and not self._queue:
            return
        if not self._warned_spool and not self.offline:
            self._warned_spool = True
            why = self.transport.last_error if self.transport and self.transport.last_error else "the server is slow"
            _logger.warning("loupe: cannot reach the server (%s); spooling to %s and retrying", why, self.spool.path)
        try:
            if failed is not None:
                self.spool.append(*failed)
                self.spooled_batches += 1
                failed = None
            elif self._inflight is not None and self._inflight_spilled is None:
                seq = self.spool.append(*self._inflight)
                self._inflight_spilled = (seq, self.spool.size)
                self.spooled_batches += 1
            self.spool_mode = True
            while self._queue:
                self.spool.append(*self._queue[0])
                self._queue_bytes -= len(self._queue.popleft()[1])
                self.spooled_batches += 1
            self._queue_bytes = 0
            self.spool.maybe_fsync()
        except OSError as e:
            # No disk either: what could not be written waits in memory.
            _logger.warning("loupe: cannot write the spool in %s: %s", self.spool.dir, e)
            if failed is not None:
                self._queue.appendleft(failed)
                self._queue_bytes += len(failed[1])
            self.spool_mode = self.spool.pending()

    # --- the uploader ---------------------------------------------------------

    def _upload_loop(self) -> None:
        assert self.transport is not None
        while True:
            job = None
            with self._cv:
                while job is None:
                    if self._stop:
                        return
                    now = time.monotonic()
                    if self.spool_mode:
                        if not self.spool.pending():
                            self.spool_mode = False
                            self._warned_spool = False
                            continue
                        if now >= self._retry_at:
                            job = ("spool", self.spool.unacked())
                            break
                        wait = self._retry_at - now
                    elif self._queue and now >= self._retry_at:
                        item = self._queue.popleft()
                        self._queue_bytes -= len(item[1])
                        self._inflight = item
                        self._inflight_since = now
                        self._inflight_spilled = None
                        job = ("direct", item)
                        break
                    elif self._queue:
                        wait = self._retry_at - now
                    else:
                        wait = self.heartbeat_interval
                    if self._created and not self.spool_mode and now >= self._next_heartbeat and not self._closing:
                        job = ("heartbeat", None)
                        break
                    if self._created and not self.spool_mode:
                        wait = min(wait, max(0.0, self._next_heartbeat - now))
                    self._cv.wait(max(0.01, wait))
            try:
                if job[0] == "direct":
                    self._send_direct(job[1])
                elif job[0] == "spool":
                    self._send_spool(job[1])
                else:
                    self._next_heartbeat = time.monotonic() + self.heartbeat_interval
                    self.transport.heartbeat()
            except Exception as e:  # never let a surprise kill the thread
                _logger.warning("loupe: upload failed: %s: %s", type(e).__name__, e)
                with self._cv:
                    if self._inflight is not None and self._inflight_spilled is None:
                        self._queue.appendleft(self._inflight)
                        self._queue_bytes += len(self._inflight[1])
                    self._inflight = None
                    self._inflight_spilled = None
                    self._schedule_retry()

    def _send_direct(self, item: Item) -> None:
        ok = self.transport.send(*item)
        with self._cv:
            spilled, self._inflight_spilled = self._inflight_spilled, None
            self._inflight = None
            if ok:
                self._succeeded(item[0])
                if spilled is not None:
                    # It went to the spool while in flight: it is done there too.
                    self.spool.ack(*spilled)
            else:
                if spilled is None:
                    self._enter_spool_mode(item)
                else:
                    self._enter_spool_mode(None)
                self._schedule_retry()
            self._cv.notify_all()

    def _send_spool(self, entries) -> None:
        if not entries:
            # Pending but nothing readable after the marker: damaged lines.
            with self._cv:
                self.spool.ack(self.spool.last_seq, self.spool.size)
                self._cv.notify_all()
            return
        i = 0
        while i < len(entries):
            j, kind, merged, key = next_request(entries, i)
            if self._stop:
                return
            ok = self.transport.send(kind, merged, key)
            with self._cv:
                if not ok:
                    self._schedule_retry()
                    self._cv.notify_all()
                    return
                last = entries[j - 1]
                self.spool.ack(last[0], last[3])
                for e in entries[i:j]:
                    self._succeeded(e[1])
                self._cv.notify_all()
            i = j

    def _succeeded(self, kind: str) -> None:
        self._backoff = 0.0
        self._retry_at = 0.0
        if kind == "run":
            self._created = True

    def _schedule_retry(self) -> None:
        if self._closing:
            self._gave_up = True
        self._backoff = min(self.backoff_cap, max(0.5, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff * random.uniform(0.8, 1.2)

    # --- flush and close ------------------------------------------------------

    def _drained(self) -> bool:
        return not self._queue and self._inflight is None and not (self.spool_mode and self.spool.pending())

    def _collect_once(self, deadline: float) -> None:
        with self._cv:
            target = self._cycles + 2
            self._wake.set()
            while self._cycles < target and self._collector.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cv.wait(left)

    def flush(self, timeout: float) -> bool:
        """Waits until everything collected so far is acknowledged (True), or
        is in the spool and the server cannot be reached (False)."""
        deadline = time.monotonic() + timeout
        self._collect_once(deadline)
        with self._cv:
            self._retry_at = 0.0
            self._cv.notify_all()
            while not self._drained():
                if self.offline:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if self.spool_mode and self._retry_at > time.monotonic():
                    break  # the last try failed; the spool has it all
                self._cv.wait(min(left, 0.05))
            self.spool.maybe_fsync(force=True)
            return self._drained() and not self.offline

    def close(self, timeout: float) -> bool:
        """Final collection, then up to ``timeout`` seconds for the uploads;
        what is left goes to the spool. True when nothing was left."""
        deadline = time.monotonic() + timeout
        self._final = True
        self._wake.set()
        self._collector.join(max(0.0, deadline - time.monotonic()))
        with self._cv:
            self._closing = True
            self._retry_at = 0.0
            self._cv.notify_all()
            while not self._drained() and not self.offline and not self._gave_up:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(min(left, 0.1))
            done = self._drained() and not self.offline
            self._stop = True
            try:
                if self._queue or (self._inflight is not None and self._inflight_spilled is None):
                    self._enter_spool_mode(None)
                self.spool.close()
            except OSError as e:
                _logger.warning("loupe: cannot write the spool in %s: %s", self.spool.dir, e)
            self._cv.notify_all()
        if self._uploader is not None:
            self._uploader.join(0.2)
        # The keep-alive connection is ours to close (an open socket at exit
        # is a ResourceWarning); not while an upload still hangs on it.
        if self.transport is not None and (self._uploader is None or not self._uploader.is_alive()):
            self.transport.client.close()
        return done

    def stats(self) -> dict:
        with self._cv:
            return {
                "spool_mode": self.spool_mode,
                "queued": len(self._queue),
                "spooled_batches": self.spooled_batches,
                "spool_pending": self.spool.pending(),
                "last_error": self.transport.last_error if self.transport else None,
            }
