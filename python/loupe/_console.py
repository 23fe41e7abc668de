"""Console capture: ``sys.stdout``/``sys.stderr`` replaced by tees that pass
every write through to the original stream unchanged, and hand complete
lines to the run as log records."""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import Callable, List, Tuple

from ._values import truncate_utf8

MAX_LINE_BYTES = 64 * 1024

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_ERROR = re.compile(r"^(Traceback \(most recent call last\)|\w*(Error|Exception)\b)|\b(ERROR|CRITICAL|FATAL)\b")
_WARNING = re.compile(r"\b(WARNING|WARN)\b|\w*Warning:")
# A tqdm-style progress bar: "45%|████▌     | 45/100 [00:01<00:01, 40.2it/s]",
# or without a total "45it [00:01, 40.2it/s]". The same rule as `loupe run`'s
# (crates/loupe-agent/src/supervise/progress.rs): bars stay out of a failure's
# stderr tail, where they would push out the lines that explain it.
_PROGRESS = re.compile(
    r"\d+%\|[^|]*\||\[\d+:\d\d(?::\d\d)?(?:<(?:\d+:\d\d(?::\d\d)?|\?))?, *(?:[\d.?]+ *(?:[a-zA-Z]+/s|s/[a-zA-Z]+)|\?[a-zA-Z]+/s)"
)

# (time, stream, level, text)
Line = Tuple[float, str, str, str]


def level_of(text: str) -> str:
    if _ERROR.search(text):
        return "error"
    if _WARNING.search(text):
        return "warning"
    return "info"


def is_progress_bar(text: str) -> bool:
    return _PROGRESS.search(text) is not None


def clean_line(line: str) -> str:
    line = line.rstrip("\r")
    i = line.rfind("\r")
    if i >= 0:  # a progress bar redrawn in place: what the terminal shows
        line = line[i + 1 :]
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    return line


class Tee:
    """A text stream that writes to ``original`` and captures lines.

    Everything not overridden here (``fileno``, ``isatty``, ``encoding``,
    ``buffer``, ``errors``, ``reconfigure``…) is the original stream's.
    """

    def __init__(self, original, stream: str, sink: Callable[[List[Line]], None]):
        # Set through __dict__: these names must not reach the original.
        d = self.__dict__
        d["_loupe_original"] = original
        d["_loupe_stream"] = stream
        d["_loupe_sink"] = sink
        d["_loupe_partial"] = ""
        d["_loupe_active"] = True
        d["_loupe_lock"] = threading.RLock()
        d["_loupe_local"] = threading.local()

    # --- the stream -----------------------------------------------------------

    def write(self, s):
        n = self._loupe_original.write(s)
        if self._loupe_active:
            try:
                self._loupe_capture(s)
            except Exception:
                pass
        return n

    def writelines(self, lines):
        lines = list(lines)
        self._loupe_original.writelines(lines)
        if self._loupe_active:
            try:
                for s in lines:
                    self._loupe_capture(s)
            except Exception:
                pass

    def flush(self):
        return self._loupe_original.flush()

    def __getattr__(self, name):
        return getattr(self.__dict__["_loupe_original"], name)

    def __setattr__(self, name, value):
        setattr(self._loupe_original, name, value)

    def __repr__(self):
        return "<loupe tee of %r>" % (self._loupe_original,)

    def __iter__(self):
        return iter(self._loupe_original)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    # --- capture --------------------------------------------------------------

    def _loupe_capture(self, s) -> None:
        if not isinstance(s, str):
            return
        local = self._loupe_local
        if getattr(local, "busy", False):
            return  # a write made while handing lines over: not captured again
        local.busy = True
        try:
            lines = None
            with self._loupe_lock:
                d = self.__dict__
                data = d["_loupe_partial"] + s if d["_loupe_partial"] else s
                if "\n" not in s:
                    if "\r" in s:
                        i = data.rfind("\r", 0, len(data) - 1)
                        if i >= 0:
                            data = data[i + 1 :]
                    if len(data) > MAX_LINE_BYTES:
                        d["_loupe_partial"] = ""
                        lines = [data]
                    else:
                        d["_loupe_partial"] = data
                else:
                    lines = data.split("\n")
                    d["_loupe_partial"] = lines.pop()
            # Handed over outside the lock: the sink takes the run's lock, and
            # a thread holding that one may be writing here.
            if lines:
                self._loupe_emit(lines)
        finally:
            local.busy = False

    def _loupe_emit(self, lines: List[str]) -> None:
        now = time.time()
        out = []
        stream = self._loupe_stream
        for line in lines:
            line = clean_line(line)
            if not line.strip():
                continue
            if len(line) > MAX_LINE_BYTES // 4:
                line = truncate_utf8(line, MAX_LINE_BYTES)
            out.append((now, stream, level_of(line), line))
        if out:
            self._loupe_sink(out)

    def _loupe_close(self) -> None:
        """Stops capturing and hands over an unfinished last line."""
        d = self.__dict__
        with self._loupe_lock:
            d["_loupe_active"] = False
            partial, d["_loupe_partial"] = d["_loupe_partial"], ""
        if partial:
            try:
                self._loupe_emit([partial])
            except Exception:
                pass


class Capture:
    """Installs the tees and takes them out again."""

    def __init__(self, sink: Callable[[List[Line]], None]):
        self._sink = sink
        self._tees: List[Tuple[str, Tee]] = []

    def install(self) -> None:
        for name in ("stdout", "stderr"):
            original = getattr(sys, name, None)
            if original is None:
                continue
            tee = Tee(original, name, self._sink)
            setattr(sys, name, tee)
            self._tees.append((name, tee))

    def uninstall(self) -> None:
        for name, tee in reversed(self._tees):
            try:
                try:
                    tee.flush()
                except Exception:
                    pass
                tee._loupe_close()
                if getattr(sys, name, None) is tee:
                    setattr(sys, name, tee._loupe_original)
                # Someone wrapped our tee since: it stays, passing through.
            except Exception:
                pass
        self._tees = []

    def original(self, name: str):
        for n, tee in self._tees:
            if n == name:
                return tee._loupe_original
        return getattr(sys, name, None)
