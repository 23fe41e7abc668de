"""The run: what ``loupe.init`` returns, and the hot path ``Run.log``."""

from __future__ import annotations

import copy
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Mapping, MutableMapping
from typing import Any, Dict, Iterable, List, Optional, Tuple

from . import _env
from ._console import is_progress_bar
from ._urls import project_url, run_url
from ._values import (
    DROP,
    config_dict,
    deep_merge,
    jsonable,
    name_json,
    name_problem,
    steps_json,
    times_json,
    to_number,
    truncate_utf8,
    values_csv,
)

_logger = logging.getLogger("loupe")

_time = time.time
_time_ns = time.time_ns
_PLAIN = frozenset((float, int))
_I64_MIN = -(1 << 63)
_I64_MAX = 1 << 63

BATCH_POINTS = 10_000  # wake the collector early when this many points wait
MAX_SERIES_PER_BODY = 2_000
MAX_POINTS_PER_BODY = 200_000
MAX_RECORDS_PER_BODY = 5_000
MAX_LOG_BYTES_PER_BODY = 4 << 20
MAX_TEXT_BYTES = 64 * 1024
MAX_ATTR_BYTES = 4096
# As many stderr lines as `loupe run` keeps in a failure (STDERR_TAIL_LINES).
STDERR_TAIL_LINES = 50

_LEVELS = {
    "debug": "debug",
    "info": "info",
    "warn": "warning",
    "warning": "warning",
    "error": "error",
    "critical": "critical",
    "fatal": "critical",
}


class LoupeWarning(UserWarning):
    """Something passed to the SDK was not stored (a value that is not a
    number, a series name the server would refuse…)."""


_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_stacklevel() -> int:
    """The stacklevel of the first frame outside this package, so that a
    warning names the user's line."""
    try:
        f = sys._getframe(2)
        level = 2
        while f is not None and os.path.dirname(os.path.abspath(f.f_code.co_filename)) == _PKG_DIR:
            f = f.f_back
            level += 1
        return level
    except Exception:
        return 3


def _warn(msg: str) -> None:
    # Never raises, even with warnings turned into errors (-W error).
    try:
        warnings.warn(msg, LoupeWarning, stacklevel=_user_stacklevel())
    except Exception:
        try:
            _logger.warning("loupe: %s", msg)
        except Exception:
            pass


def level_name(level: Any) -> str:
    v = getattr(level, "value", level)
    return _LEVELS.get(str(v).strip().lower(), "warning")


# --- config and summary ---------------------------------------------------------


class Config(MutableMapping):
    """The run's config: a dict that also reads and writes as attributes.
    Every change is sent to the server as a config merge (batched)."""

    def __init__(self, run: Optional["Run"] = None, data: Optional[dict] = None):
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_data", data if data is not None else {})
        object.__setattr__(self, "_lock", threading.RLock())

    def __getitem__(self, key):
        return self._data[key]

    def __setitem__(self, key, value):
        self.update({key: value})

    def __delitem__(self, key):
        with self._lock:
            del self._data[key]
        if self._run is not None:
            # The server merges: null is as near to "gone" as a merge gets.
            self._run._config_changed({str(key): None})

    def __iter__(self):
        return iter(list(self._data))

    def __len__(self):
        return len(self._data)

    def __contains__(self, key):
        return key in self._data

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError("config has no key %r" % name) from None

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self.update({name: value})

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def update(self, d=None, allow_val_change=None, **kwargs):  # noqa: ARG002 (W&B's signature)
        try:
            merge = config_dict(d) if d is not None else {}
            if kwargs:
                merge.update(jsonable(kwargs))
        except Exception as e:
            _warn("config.update: %s; not stored" % e)
            return
        if not merge:
            return
        with self._lock:
            deep_merge(self._data, copy.deepcopy(merge))
        if self._run is not None:
            self._run._config_changed(merge)

    def setdefaults(self, d):
        try:
            given = config_dict(d)
        except Exception as e:
            _warn("config.setdefaults: %s; not stored" % e)
            return
        self.update({k: v for k, v in given.items() if k not in self._data})

    def as_dict(self) -> dict:
        with self._lock:
            return copy.deepcopy(self._data)

    def __repr__(self):
        return "Config(%r)" % (self._data,)


class Summary(MutableMapping):
    """The run's summary: numbers set here are sent to the server, which
    also keeps last/min/max of every logged series by itself."""

    def __init__(self, run: Optional["Run"] = None):
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_data", {})
        object.__setattr__(self, "_warned", set())

    def __getitem__(self, key):
        return self._data[key]

    def __setitem__(self, key, value):
        self.update({key: value})

    def __delitem__(self, key):
        del self._data[key]

    def __iter__(self):
        return iter(list(self._data))

    def __len__(self):
        return len(self._data)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError("summary has no key %r" % name) from None

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self[name] = value

    def update(self, d=None, **kwargs):
        items: Dict[str, Any] = {}
        if d is not None:
            items.update(_flatten(d))
        if kwargs:
            items.update(_flatten(kwargs))
        sent = {}
        for k, v in items.items():
            self._data[k] = v
            x = to_number(v)
            if x is DROP or not (x == x and x not in (float("inf"), float("-inf"))) or name_problem(k):
                if k not in self._warned:
                    self._warned.add(k)
                    _warn("summary[%r]: the server's summary holds finite numbers only; kept locally" % (k,))
                continue
            try:
                x = float(x)
            except OverflowError:
                continue
            sent[k] = {"last": x, "min": x, "max": x, "count": 1, "last_step": None}
        if sent and self._run is not None:
            self._run._summary_changed(sent)

    def __repr__(self):
        return "Summary(%r)" % (self._data,)


def _flatten(d: Any, prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    if not isinstance(d, Mapping):
        return out
    for k, v in d.items():
        key = prefix + str(k)
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "/"))
        else:
            out[key] = v
    return out


# --- the run ------------------------------------------------------------------


class Run:
    """One run. Made by :func:`loupe.init`; every method is safe to call in
    a training loop: it never raises and never waits on the network."""

    def __init__(self) -> None:
        # The fields the hot path reads, first.
        self._closed = False
        self._lock = threading.RLock()
        self._series: Dict[Any, tuple] = {}
        # The frame: (names, flat.append, flat.extend, flat). While calls keep
        # logging the same names, all plain numbers, each call adds its step,
        # time and values to one flat list: three list calls per call instead
        # of three per value, and no object that the garbage collector tracks
        # (a tuple per call would make logging trigger full collections, which
        # cost a big training process far more than they save). The flat list
        # becomes the series' columns, by strided slices, when the frame ends
        # (other names, a value that needs converting) or is collected.
        self._frame: Optional[tuple] = None
        self._logs: List[dict] = []
        self._step = 0
        self._npts = 0
        self._wake = threading.Event()
        self._names: set = set()
        self._bad_names: set = set()
        self._warned: set = set()
        # Pending run updates, sent with the next batch.
        self._pending_config: Optional[dict] = None
        self._pending_summary: Optional[dict] = None
        self._pending_tags: Optional[List[str]] = None
        self._pending_notes: Optional[str] = None
        self._final_patch: Optional[dict] = None
        # What `loupe run` also reports when a run fails: the exception (set
        # by _fail_with) and the last lines the program wrote to stderr.
        self._failure: Optional[dict] = None
        self._stderr_tail: "deque[str]" = deque(maxlen=STDERR_TAIL_LINES)
        self.silent = False
        self._pipeline = None
        self._capture = None
        self._lockfile = None
        self._finish_lock = threading.Lock()
        self._pid = os.getpid()
        # Log batches' idempotency keys: "<nonce>:<n>". The nonce tells this
        # process's batches from those of any other process that writes the
        # same run (a resume), so keys never collide on the server.
        self._key_nonce = secrets.token_hex(6)
        self._log_batches = 0
        self.mode = "online"
        self.id = ""
        self.name: Optional[str] = None
        self.project: Optional[str] = None
        self.group: Optional[str] = None
        self.rank: Optional[int] = None
        self.world_size: Optional[int] = None
        self.local_rank: Optional[int] = None
        self.dir = ""
        self.server = ""
        self.resumed = False
        self.start_time = _time()
        self.status = "running"
        self._tags: List[str] = []
        self._notes: Optional[str] = None
        self.config = Config(self)
        self.summary = Summary(self)

    # --- the hot path ----------------------------------------------------------

    def log(self, data: Mapping, step: Optional[int] = None, commit: bool = True, sync: Any = None) -> None:
        """Records ``data`` (names to numbers) at ``step``.

        Without ``step``, the run's own counter is used and moves on by one
        per ``commit=True`` call (W&B semantics); ``commit=False`` adds to the
        current step. Nested dicts become ``a/b`` names. Values that are not
        numbers are dropped with one warning per name.
        """
        if self._closed:
            return
        warn = None
        try:
            with self._lock:
                if step is None:
                    s = self._step
                elif type(step) is int and _I64_MIN < step < _I64_MAX:
                    s = step  # the common case, without a method call
                else:
                    s = self._coerce_step(step)
                t = _time_ns()
                keys = tuple(data)
                fr = self._frame
                if fr is not None:
                    if keys == fr[0]:
                        for v in data.values():
                            if type(v) not in _PLAIN:
                                break
                        else:
                            fr[1](s)
                            fr[1](t)
                            fr[2](data.values())
                            if commit:
                                self._step = s + 1
                            n = self._npts + len(keys)
                            if n >= BATCH_POINTS:
                                n = 0
                                self._wake.set()
                            self._npts = n
                            return
                    # Other names, or a value to convert: the frame ends
                    # here, so that every series keeps its points in order.
                    self._frame = None
                    _frame_to_columns(fr, self._series)
                ser = self._series
                slow = None
                for k, v in data.items():
                    if type(v) in _PLAIN:
                        b = ser.get(k)
                        if b is not None:
                            b[0](s)
                            b[1](t)
                            b[2](v)
                            continue
                    if slow is None:
                        slow = [(k, v)]
                    else:
                        slow.append((k, v))
                if slow is not None:
                    warn = self._log_slow(ser, slow, s, t, "", None)
                elif keys:
                    # Every name is known and every value a plain number: if
                    # the next call logs the same names, it takes the frame.
                    flat: List[Any] = []
                    self._frame = (keys, flat.append, flat.extend, flat)
                if commit:
                    self._step = s + 1
                n = self._npts + len(data)
                if n >= BATCH_POINTS:
                    n = 0
                    self._wake.set()
                self._npts = n
        except Exception as e:
            self._internal_error("log", e, data)
        if warn:
            for w in warn:
                _warn(w)

    def _log_slow(self, ser, pairs, s, t, prefix, warn):
        for k, v in pairs:
            if prefix or type(k) is not str:
                k = prefix + str(k)
            if isinstance(v, Mapping):
                warn = self._log_slow(ser, list(v.items()), s, t, k + "/", warn)
                continue
            x = v if type(v) in _PLAIN else to_number(v)
            if x is DROP:
                if k not in self._warned:
                    self._warned.add(k)
                    if warn is None:
                        warn = []
                    warn.append(
                        "log(): %r is a %s, not a number; dropped (Loupe stores numbers: int, float, bool, "
                        "numpy scalars, 0-d arrays and tensors)" % (k, type(v).__name__)
                    )
                continue
            b = ser.get(k)
            if b is None:
                if k not in self._names:
                    if k in self._bad_names:
                        continue
                    problem = name_problem(k)
                    if problem is not None:
                        self._bad_names.add(k)
                        if warn is None:
                            warn = []
                        warn.append("log(): %r: %s; dropped" % (k, problem))
                        continue
                    self._names.add(k)
                st: List[Any] = []
                ts: List[int] = []
                vs: List[Any] = []
                b = (st.append, ts.append, vs.append, st, ts, vs)
                ser[k] = b
            b[0](s)
            b[1](t)
            b[2](x)
        return warn

    def _coerce_step(self, step: Any) -> int:
        if type(step) is int and -(1 << 63) < step < (1 << 63):
            return step
        try:
            if isinstance(step, bool):
                raise TypeError
            i = int(step)
            if i != step or not -(1 << 63) < i < (1 << 63):
                raise ValueError
            return i
        except Exception:
            if ("step", repr(step)) not in self._warned:
                self._warned.add(("step", repr(step)))
                _warn("log(): step=%r is not an integer step; using the run's step %d" % (step, self._step))
            return self._step

    def _internal_error(self, where: str, e: BaseException, data: Any = None) -> None:
        key = ("internal", where, type(e).__name__)
        if key in self._warned:
            return
        self._warned.add(key)
        if where == "log" and not hasattr(data, "items"):
            _warn("log() takes a dict of names to numbers, got %s; dropped" % type(data).__name__)
        else:
            _warn("%s(): %s: %s (ignored)" % (where, type(e).__name__, e))

    # --- logs, alerts -------------------------------------------------------------

    def _console_lines(self, lines: List[Tuple[float, str, str, str]]) -> None:
        if self._closed:
            return
        recs = [{"time": t, "stream": st, "level": lv, "text": tx} for t, st, lv, tx in lines]
        with self._lock:
            self._logs.extend(recs)
            self._stderr_tail.extend(tx for _, st, _, tx in lines if st == "stderr" and not is_progress_bar(tx))

    def _record(self, text: str, level: str = "info", attributes: Optional[Dict[str, str]] = None) -> None:
        rec: Dict[str, Any] = {
            "time": _time(),
            "stream": "app",
            "level": level,
            "text": truncate_utf8(text, MAX_TEXT_BYTES),
        }
        if attributes:
            rec["attributes"] = {str(k)[:256]: truncate_utf8(str(v), MAX_ATTR_BYTES) for k, v in attributes.items()}
        with self._lock:
            self._logs.append(rec)

    def alert(self, title: str, text: str = "", level: Any = "warning", wait_duration: Any = None) -> None:  # noqa: ARG002
        """An alert: an app log record with attributes alert=true and title."""
        if self._closed:
            return
        try:
            title = str(title)
            text = str(text)
            self._record(
                "%s: %s" % (title, text) if text else title,
                level_name(level),
                {"alert": "true", "title": title},
            )
        except Exception as e:
            self._internal_error("alert", e)

    def log_text(self, text: str, level: str = "info", **attributes: Any) -> None:
        """One app log record (a line of text with a level and attributes)."""
        if self._closed:
            return
        try:
            self._record(str(text), level_name(level), {k: str(v) for k, v in attributes.items()} or None)
        except Exception as e:
            self._internal_error("log_text", e)

    # --- run updates --------------------------------------------------------------

    def _config_changed(self, merge: dict) -> None:
        if self._closed:
            return
        with self._lock:
            if self._pending_config is None:
                self._pending_config = copy.deepcopy(merge)
            else:
                deep_merge(self._pending_config, copy.deepcopy(merge))

    def _summary_changed(self, sent: dict) -> None:
        if self._closed:
            return
        with self._lock:
            if self._pending_summary is None:
                self._pending_summary = {}
            self._pending_summary.update(sent)

    @property
    def tags(self) -> Tuple[str, ...]:
        return tuple(self._tags)

    @tags.setter
    def tags(self, tags: Iterable[str]) -> None:
        try:
            new = _clean_tags(tags)
        except Exception as e:
            self._internal_error("tags", e)
            return
        self._tags = new
        if not self._closed:
            with self._lock:
                self._pending_tags = list(new)

    @property
    def notes(self) -> Optional[str]:
        return self._notes

    @notes.setter
    def notes(self, notes: Optional[str]) -> None:
        self._notes = None if notes is None else str(notes)
        if not self._closed:
            with self._lock:
                self._pending_notes = self._notes or ""

    @property
    def step(self) -> int:
        return self._step

    @property
    def url(self) -> str:
        """The run's page in the web UI."""
        return run_url(self.server, self.id)

    def get_url(self) -> str:
        """W&B's ``run.get_url()``: the run's page in the web UI."""
        return self.url

    def get_project_url(self) -> Optional[str]:
        return project_url(self.server, self.project) if self.project else None

    def get_sweep_url(self) -> None:
        return None

    def project_name(self) -> str:
        return self.project or ""

    @property
    def offline(self) -> bool:
        return self.mode == "offline"

    @property
    def disabled(self) -> bool:
        return self.mode == "disabled"

    def _take_patch(self) -> Optional[dict]:
        patch: Dict[str, Any] = {}
        if self._pending_config is not None:
            patch["config"], self._pending_config = self._pending_config, None
        if self._pending_summary is not None:
            patch["summary"], self._pending_summary = self._pending_summary, None
        if self._pending_tags is not None:
            patch["tags"], self._pending_tags = self._pending_tags, None
        if self._pending_notes is not None:
            patch["notes"], self._pending_notes = self._pending_notes, None
        if self._final_patch is not None:
            patch.update(self._final_patch)
            self._final_patch = None
        return patch or None

    # --- batches --------------------------------------------------------------------

    def _drain(self) -> List[tuple]:
        """Takes everything buffered and returns it as request bodies:
        ``(kind, body)``, and ``(kind, body, key)`` for log batches."""
        with self._lock:
            series = self._series
            frame = self._frame
            if series or frame is not None:
                # Both are taken together: the frame's points are newer than
                # the columns', and nothing of them stays behind for log().
                self._series = {}
                self._frame = None
            logs = self._logs
            if logs:
                self._logs = []
            patch = self._take_patch()
            self._npts = 0
        if frame is not None:
            _frame_to_columns(frame, series)
        items: List[Tuple[str, bytes]] = []
        if series:
            items.extend(metrics_bodies(series))
        if logs:
            for kind, body in logs_bodies(logs):
                self._log_batches += 1
                items.append((kind, body, "%s:%d" % (self._key_nonce, self._log_batches)))
        if patch is not None:
            items.append(("patch", _dumps(patch)))
        return items

    # --- the end --------------------------------------------------------------------

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Sends everything logged so far; True when the server has it all,
        False when some of it waits in the spool. Waits at most ``timeout``
        seconds (default: LOUPE_FINISH_TIMEOUT, 30)."""
        if self._pipeline is None or self._closed:
            return False
        if timeout is None:
            timeout = _env.env_float("LOUPE_FINISH_TIMEOUT", 30.0)
        try:
            return self._pipeline.flush(timeout)
        except Exception as e:
            self._internal_error("flush", e)
            return False

    def finish(self, exit_code: Optional[int] = None, quiet: Any = None, *, status: Optional[str] = None) -> None:  # noqa: ARG002
        """Ends the run: status ``finished`` (exit code 0) or ``failed``;
        waits up to LOUPE_FINISH_TIMEOUT (30 s) for the uploads, and spools
        what could not be sent."""
        with self._finish_lock:
            if self._closed:
                return
            try:
                self._finish(exit_code, status)
            except Exception as e:
                self._closed = True
                self._internal_error("finish", e)
            finally:
                from . import _api

                _api._forget(self)

    def _finish(self, exit_code: Optional[int], status: Optional[str]) -> None:
        try:
            code = 0 if exit_code is None else int(exit_code)
        except (TypeError, ValueError):
            code = 1
        if status is None:
            status = "finished" if code == 0 else "failed"
        if self._capture is not None:
            self._capture.uninstall()
            self._capture = None
        with self._lock:
            self._final_patch = {"status": status, "exit_code": code, "end_time": _time()}
            if status != "finished":
                self._final_patch["failure"] = self._failure_object()
            self._closed = True
        self.status = status
        done = True
        if self._pipeline is not None:
            timeout = _env.env_float("LOUPE_FINISH_TIMEOUT", 30.0)
            done = self._pipeline.close(timeout)
            stats = self._pipeline.stats()
            if self.mode == "offline":
                _logger.warning("loupe: offline run %s is in %s; upload it with `python -m loupe sync %s`",
                            self.id, self.dir, self.dir)
            elif not done and stats["spool_pending"]:
                _logger.warning(
                    "loupe: run %s: the server did not take everything (%s); the rest is in %s and is sent the "
                    "next time this run is resumed, or with `python -m loupe sync %s`",
                    self.id, stats["last_error"] or "timed out", self.dir, self.dir)
        _update_run_json(self.dir, {"final_status": status, "exit_code": code, "end_time": _time()})
        _unlock(self._lockfile)
        self._lockfile = None
        self._announce("%s:" % status)

    def _announce(self, what: str) -> None:
        """W&B prints the run's page at init and at finish; so do we (on
        stderr, not captured; quiet with LOUPE_SILENT=1 or
        ``settings=loupe.Settings(silent=True)``)."""
        if self.silent or _env.env_bool("LOUPE_SILENT", False) or _env.env_bool("WANDB_SILENT", False):
            return
        where = self.url if self.mode == "online" else "%s (offline; upload with `python -m loupe sync %s`)" % (
            self.url, self.dir)
        # Past the console capture's tee (when it is installed): the line is
        # for the person at the terminal, not a line of the run's output.
        err = getattr(sys.stderr, "_loupe_original", sys.stderr)
        try:
            err.write("loupe: run %s %s %s\n" % (self.id, what, where))
            err.flush()
        except Exception:
            pass

    def _failure_object(self) -> dict:
        """The run's ``failure``, in the shape `loupe run` writes it."""
        f = dict(self._failure or {})
        for k in ("exception_type", "message", "signal", "traceback"):
            f.setdefault(k, None)
        f["stderr_tail"] = list(self._stderr_tail)
        return f

    def _fail_with(self, exc: BaseException, tb: Any = None) -> None:
        """Records an exception's traceback and finishes the run as failed
        (killed for KeyboardInterrupt)."""
        if self._closed:
            return
        try:
            text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__)).rstrip()
            self._record(text, "error", {"exception": type(exc).__name__})
            self._failure = {
                "exception_type": exception_type_name(type(exc)),
                "message": truncate_utf8(str(exc), MAX_TEXT_BYTES) or None,
                "signal": signal.SIGINT.value if isinstance(exc, KeyboardInterrupt) else None,
                "traceback": truncate_utf8(text, MAX_TEXT_BYTES),
            }
        except Exception:
            pass
        if isinstance(exc, KeyboardInterrupt):
            self.finish(exit_code=130, status="killed")
        else:
            self.finish(exit_code=1)

    def _exit_with(self, exc: BaseException, tb: Any = None) -> None:
        if isinstance(exc, SystemExit):
            # sys.exit(0) is a clean end; sys.exit(n) or sys.exit("msg") is not.
            code = exc.code
            if code is None or code == 0:
                self.finish(exit_code=0)
            elif isinstance(code, int):
                self._failure = {"exception_type": "SystemExit", "message": "exit code %d" % code}
                self.finish(exit_code=code)
            else:
                self._record(str(code), "error")
                self._failure = {"exception_type": "SystemExit", "message": str(code)}
                self.finish(exit_code=1)
        else:
            self._fail_with(exc, tb)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            self._exit_with(exc, tb)
        else:
            self.finish()
        return False

    # --- W&B calls that have no Loupe meaning (yet) ---------------------------------

    def define_metric(self, name: str = "", step_metric: Optional[str] = None, **kwargs: Any) -> None:
        """Accepted; charts use the step every point is logged at (see
        python/README.md), so there is nothing to change."""
        return None

    def watch(self, *args: Any, **kwargs: Any) -> None:
        return None

    def unwatch(self, *args: Any, **kwargs: Any) -> None:
        return None

    def save(self, *args: Any, **kwargs: Any) -> bool:
        return False

    def log_artifact(self, artifact: Any = None, name: Optional[str] = None, type: Optional[str] = None,  # noqa: A002
                     aliases: Any = None, **kwargs: Any) -> Any:
        """Loupe has no artifact store yet: records a run event naming the
        artifact, its type and files (``event=artifact`` on an app log
        record) and returns the artifact."""
        return self._artifact_event("logged", artifact, name, type)

    def use_artifact(self, artifact: Any = None, type: Optional[str] = None, **kwargs: Any) -> Any:  # noqa: A002
        """Records which artifact the run used; returns it (nothing to download)."""
        return self._artifact_event("used", artifact, None, type)

    def log_model(self, path: Any = None, name: Optional[str] = None, aliases: Any = None, **kwargs: Any) -> Any:
        return self._artifact_event("logged", path, name, "model")

    def log_code(self, root: Any = ".", name: Optional[str] = None, **kwargs: Any) -> Any:
        return self._artifact_event("logged", root, name or "code", "code")

    def _artifact_event(self, verb: str, artifact: Any, name: Optional[str], type: Optional[str]) -> Any:  # noqa: A002
        from ._compat import Artifact

        try:
            if not isinstance(artifact, Artifact):
                path = None if artifact is None else str(artifact)
                artifact = Artifact(name or (os.path.basename(path.rstrip(os.sep)) if path else "artifact"),
                                    type or "artifact")
                if path is not None and os.path.exists(path):
                    (artifact.add_dir if os.path.isdir(path) else artifact.add_file)(path)
                elif path is not None:
                    artifact.add_reference(path)
            if not self._closed:
                self._record("artifact %s: %s" % (verb, artifact.describe()), "info",
                             {"event": "artifact", "artifact": artifact.name, "type": artifact.type, "action": verb})
        except Exception as e:
            self._internal_error("log_artifact", e)
        return artifact

    def mark_preempting(self) -> None:
        """Records that the scheduler is about to preempt the run (a run
        event), so a run that stops next reads as preempted, not lost."""
        if not self._closed:
            self._record("run marked as preempting", "warning", {"event": "preempting"})

    def __repr__(self) -> str:
        return "<loupe.Run %s %s (%s)>" % (self.id, self.name or "", self.mode)


class DisabledRun(Run):
    """``mode="disabled"``: the same API, and nothing happens."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "disabled"
        self.id = "disabled"
        self.config = Config(None)
        self.summary = Summary(None)

    def log(self, data: Mapping, step: Optional[int] = None, commit: bool = True, sync: Any = None) -> None:
        if step is None and commit:
            self._step += 1
        elif step is not None:
            try:
                self._step = int(step) + (1 if commit else 0)
            except Exception:
                pass

    def alert(self, *args: Any, **kwargs: Any) -> None:
        return None

    def log_text(self, *args: Any, **kwargs: Any) -> None:
        return None

    def flush(self, timeout: Optional[float] = None) -> bool:
        return True

    def finish(self, exit_code: Optional[int] = None, quiet: Any = None, *, status: Optional[str] = None) -> None:
        if self._closed:
            return
        self._closed = True
        code = 0 if exit_code is None else exit_code
        self.status = status or ("finished" if code == 0 else "failed")
        from . import _api

        _api._forget(self)


# --- bodies ---------------------------------------------------------------------


def exception_type_name(etype: type) -> str:
    """The exception's name as its traceback's last line shows it (and as
    `loupe run` reads it from there): ``ValueError``,
    ``torch.OutOfMemoryError``."""
    name = getattr(etype, "__qualname__", None) or getattr(etype, "__name__", "Exception")
    mod = getattr(etype, "__module__", None)
    if mod and mod not in ("builtins", "__main__"):
        return "%s.%s" % (mod, name)
    return name


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


def _frame_to_columns(frame: tuple, series: Dict[Any, tuple]) -> None:
    """Appends a frame's points to the columns of its series (C loops:
    strided slices and extend)."""
    names, flat = frame[0], frame[3]
    if not flat:
        return
    w = len(names) + 2
    steps = flat[0::w]
    times = flat[1::w]
    for j, k in enumerate(names):
        col = flat[2 + j :: w]
        b = series.get(k)
        if b is None:
            st: List[Any] = []
            ts: List[Any] = []
            vs: List[Any] = []
            b = (st.append, ts.append, vs.append, st, ts, vs)
            series[k] = b
        b[3].extend(steps)
        b[4].extend(times)
        b[5].extend(col)


def metrics_bodies(series: Dict[Any, tuple]) -> List[Tuple[str, bytes]]:
    # A body is built as a list of pieces joined once at the end (columns
    # sliced through memoryviews, not copied): at 100 000 points a batch is
    # ~5 MB, and the copies that concatenation made cost a quarter of the
    # background work per point.
    out = []
    parts: List[Any] = [b'{"series":[']
    n_series = 0
    points = 0
    prev_steps: Optional[list] = None
    prev_times: Optional[list] = None
    steps_s = times_s = b""
    for name, b in series.items():
        steps, times, vals = b[3], b[4], b[5]
        if not vals:
            continue
        # Names logged together share their step and time columns: format once.
        if prev_steps is None or steps != prev_steps:
            steps_s = steps_json(steps)
            prev_steps = steps
        if prev_times is None or times != prev_times:
            times_s = times_json(times)
            prev_times = times
        if n_series:
            parts.append(b",")
        parts += (b'{"name":', name_json(name), b',"step":', steps_s, b',"time":', times_s, b',"value":[',
                  memoryview(values_csv(vals))[:-1], b"]}")
        n_series += 1
        points += len(vals)
        if n_series >= MAX_SERIES_PER_BODY or points >= MAX_POINTS_PER_BODY:
            parts.append(b"]}")
            out.append(("metrics", b"".join(parts)))
            parts = [b'{"series":[']
            n_series = 0
            points = 0
    if n_series:
        parts.append(b"]}")
        out.append(("metrics", b"".join(parts)))
    return out


def logs_bodies(records: List[dict]) -> List[Tuple[str, bytes]]:
    out = []
    chunk: List[dict] = []
    size = 0
    for r in records:
        chunk.append(r)
        size += len(r["text"]) + 64
        if len(chunk) >= MAX_RECORDS_PER_BODY or size >= MAX_LOG_BYTES_PER_BODY:
            out.append(("logs", _records_body(chunk)))
            chunk = []
            size = 0
    if chunk:
        out.append(("logs", _records_body(chunk)))
    return out


def _records_body(records: List[dict]) -> bytes:
    text = json.dumps({"records": records}, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from undecodable output
        return text.encode("utf-8", "replace")


def _clean_tags(tags: Any) -> List[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = [tags]
    out: List[str] = []
    for t in tags:
        t = str(t).strip()
        if t and t not in out and not any(c < " " for c in t):
            out.append(t[:128])
    return out[:256]


# --- run directory files ----------------------------------------------------------

RUN_JSON = "run.json"


def _write_json_atomic(path: str, obj: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_run_json(run_dir: str) -> Optional[dict]:
    try:
        with open(os.path.join(run_dir, RUN_JSON), encoding="utf-8") as f:
            obj = json.load(f)
        return obj if isinstance(obj, dict) else None
    except (OSError, ValueError):
        return None


def _update_run_json(run_dir: str, fields: dict) -> None:
    if not run_dir:
        return
    try:
        obj = read_run_json(run_dir) or {}
        obj.update(fields)
        _write_json_atomic(os.path.join(run_dir, RUN_JSON), obj)
    except Exception:
        pass


def try_lock(run_dir: str) -> Any:
    """An exclusive lock on the run directory while a process writes it, or
    None when another process holds it. Where locks are not available the
    answer is a dummy that always succeeds."""
    try:
        import fcntl
    except ImportError:  # Windows
        return True
    try:
        f = open(os.path.join(run_dir, "lock"), "a+")
    except OSError:
        return True
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return None
    try:
        f.seek(0)
        f.truncate()
        f.write("%d\n" % os.getpid())
        f.flush()
    except OSError:
        pass
    return f


def _unlock(lock: Any) -> None:
    if lock is None or lock is True:
        return
    try:
        import fcntl

        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    except Exception:
        pass
    try:
        lock.close()
    except Exception:
        pass
