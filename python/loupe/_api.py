"""``loupe.init`` and the module-level calls (``loupe.log``, ``loupe.finish``…)
that act on the current run."""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import string
import sys
import tempfile
import threading
import weakref
from typing import Any, Dict, Iterable, Optional, Tuple, Union

from . import _env
from ._console import Capture
from ._http import Client
from ._run import (
    Config,
    DisabledRun,
    Run,
    Summary,
    _clean_tags,
    _dumps,
    _warn,
    _write_json_atomic,
    read_run_json,
    try_lock,
)
from ._sender import Pipeline, Transport
from ._spool import Spool
from ._values import config_dict, deep_merge

_logger = logging.getLogger("loupe")

_current: Optional[Run] = None
_all_runs: "weakref.WeakSet[Run]" = weakref.WeakSet()
_hooks_installed = False
_prev_excepthook = None
_state_lock = threading.RLock()

_ID_CHARS = string.ascii_lowercase + string.digits
_MODES = {
    "online": "online",
    "run": "online",
    "offline": "offline",
    "dryrun": "offline",
    "disabled": "disabled",
    "disable": "disabled",
}
_RESUME_WORDS = ("allow", "must", "auto", "never")


def _new_id() -> str:
    return "".join(secrets.choice(_ID_CHARS) for _ in range(8))


def _valid_id(s: str) -> bool:
    return (
        0 < len(s) <= 64
        and all(c.isascii() and (c.isalnum() or c in "_-.") for c in s)
        and s not in (".", "..")
    )


def _module():
    return sys.modules.get("loupe")


def _set_current(run: Optional[Run]) -> None:
    global _current
    _current = run
    m = _module()
    if m is None:
        return
    if run is None:
        m.run = None
        m.config = Config(None)
        m.summary = Summary(None)
    else:
        m.run = run
        m.config = run.config
        m.summary = run.summary


def _forget(run: Run) -> None:
    with _state_lock:
        if _current is run:
            _set_current(None)


def _root_dir() -> str:
    given = _env.env_str("LOUPE_DIR")
    if given:
        return os.path.abspath(os.path.expanduser(given))
    root = os.path.join(os.getcwd(), "loupe")
    if os.path.isfile(os.path.join(root, "__init__.py")):
        # ./loupe is a Python package (this SDK's own source, say): not there.
        root = os.path.join(os.getcwd(), "loupe-runs")
    return root


def _latest_path() -> str:
    return os.path.join(_root_dir(), "latest-run")


def init(
    project: Optional[str] = None,
    name: Optional[str] = None,
    config: Any = None,
    tags: Optional[Iterable[str]] = None,
    group: Optional[str] = None,
    notes: Optional[str] = None,
    resume: Union[None, bool, str] = None,
    resume_step: Optional[int] = None,
    dir: Optional[str] = None,  # noqa: A002 (W&B's name)
    mode: Optional[str] = None,
    server: Optional[str] = None,
    token: Optional[str] = None,
    id: Optional[str] = None,  # noqa: A002 (W&B's name)
    capture_console: bool = True,
    **kwargs: Any,
) -> Run:
    """Starts a run and returns it (also ``loupe.run``).

    Never waits on the network: the run is created on the server by the
    background uploader, and everything is spooled to ``dir`` while the
    server cannot be reached.

    - ``resume``: a run id to resume (or True/"allow"/"must" with ``id``, or
      True alone for the run last started in this directory); ``id`` does
      the same. ``resume_step``: the step the resumed run continues from.
    - ``dir``: this run's directory (spool, ``run.json``); default
      ``$LOUPE_DIR/run-<id>``, ``$LOUPE_DIR`` defaulting to ``./loupe``.
    - ``mode``: "online" (default, or $LOUPE_MODE), "offline" (spool only;
      upload later with ``python -m loupe sync DIR``) or "disabled" (no-op).
    - ``server``/``token``: default $LOUPE_SERVER (http://127.0.0.1:7070)
      and $LOUPE_TOKEN.
    Other W&B arguments (entity, job_type, reinit, settings…) are accepted
    and ignored.
    """
    with _state_lock:
        if _current is not None:
            # W&B's newer default: a second init finishes the previous run.
            _current.finish()
        m = (mode or _env.env_str("LOUPE_MODE") or "online").strip().lower()
        if m not in _MODES:
            raise ValueError("mode=%r: expected online, offline or disabled" % mode)
        m = _MODES[m]
        if m == "disabled":
            run: Run = DisabledRun()
            _apply_basic(run, project, name, config, tags, group, notes)
            _set_current(run)
            return run
        run = _start(m, project, name, config, tags, group, notes, resume, resume_step, dir, server, token, id,
                     capture_console)
        run.silent = _silent(kwargs.get("settings"))
        _set_current(run)
        _install_hooks()
        run._announce("started:")
        return run


def _silent(settings: Any) -> bool:
    """W&B's ``settings=wandb.Settings(silent=True)`` (or a dict)."""
    if isinstance(settings, dict):
        return bool(settings.get("silent"))
    return bool(getattr(settings, "silent", False))


def _apply_basic(run: Run, project, name, config, tags, group, notes) -> None:
    run.project = project or _env.env_str("LOUPE_PROJECT")
    run.name = name
    run.group = group
    run._tags = _clean_tags(tags)
    run._notes = notes
    pre = _module().config if _module() is not None else None
    data: Dict[str, Any] = {}
    if isinstance(pre, Config) and pre._run is None:
        data.update(pre.as_dict())
    if config is not None:
        try:
            deep_merge(data, config_dict(config))
        except Exception as e:
            _warn("init(config=...): %s; config not stored" % e)
    run.config._data.update(data)


def _resolve_id(resume: Any, id: Optional[str]) -> Tuple[Optional[str], bool]:
    """(run id, whether it resumes)."""
    rid = id or _env.env_str("LOUPE_RUN_ID")
    if isinstance(resume, str) and resume.strip().lower() not in _RESUME_WORDS:
        return resume.strip(), True
    wants = resume is True or (isinstance(resume, str) and resume.strip().lower() in ("allow", "must", "auto"))
    if rid:
        return rid, True
    if wants:
        try:
            with open(_latest_path(), encoding="utf-8") as f:
                last = f.read().strip()
            if last:
                return last, True
        except OSError:
            pass
        if isinstance(resume, str) and resume.strip().lower() == "must":
            _warn("init(resume='must'): no run to resume here; starting a new run")
    return None, False


def _start(mode, project, name, config, tags, group, notes, resume, resume_step, dir, server, token, id,
           capture_console) -> Run:
    run = Run()
    run.mode = mode
    rid, resumed = _resolve_id(resume, id)
    if rid is not None and not _valid_id(rid):
        raise ValueError("run id %r: 1-64 characters of A-Z, a-z, 0-9, '_', '-', '.'" % rid)
    run.id = rid or _new_id()
    run.resumed = resumed
    _apply_basic(run, project, name, config, tags, group, notes)
    dist = _env.distributed()
    run.rank, run.world_size, run.local_rank = dist["rank"], dist["world_size"], dist["local_rank"]
    if run.group is None:
        run.group = dist["group"]
    if resume_step is not None:
        try:
            run._step = int(resume_step)
        except (TypeError, ValueError):
            _warn("init(resume_step=%r): not an integer; ignored" % (resume_step,))
            resume_step = None
    run.server, token = _env.server_and_token(server, token)

    # The run directory, locked while this process writes it.
    run.dir, run._lockfile = _run_dir(dir, run.id)

    create: Dict[str, Any] = {"id": run.id}
    for k, v in (
        ("project", run.project),
        ("name", run.name),
        ("group", run.group),
        ("rank", run.rank),
        ("world_size", run.world_size),
        ("notes", run._notes),
    ):
        if v is not None:
            create[k] = v
    if run._tags:
        create["tags"] = list(run._tags)
    cfg = run.config.as_dict()
    if cfg:
        create["config"] = cfg
    for k, v in (("host", _env.host()), ("command", _env.command_line()), ("git_commit", _env.git_commit())):
        if v is not None:
            create[k] = v
    if resume_step is not None:
        create["resume_step"] = int(resume_step)
    create_body = _dumps(create)

    info = {
        "version": 1,
        "id": run.id,
        "server": run.server,
        "project": run.project,
        "mode": mode,
        "pid": os.getpid(),
        "start_time": run.start_time,
        "create": create,
        "final_status": None,
    }
    try:
        _write_json_atomic(os.path.join(run.dir, "run.json"), info)
    except OSError as e:
        _logger.warning("loupe: cannot write %s: %s", run.dir, e)
    if os.path.dirname(run.dir) == _root_dir():
        try:
            with open(_latest_path(), "w", encoding="utf-8") as f:
                f.write(run.id + "\n")
        except OSError:
            pass

    spool = Spool(run.dir)
    transport = None
    if mode == "online":
        client = Client(run.server, token, timeout=_env.env_float("LOUPE_HTTP_TIMEOUT", 15.0))
        transport = Transport(client, run.id, create_body, run.dir, compress=_env.compress_for(run.server))
    pipeline = Pipeline(
        run._drain,
        spool,
        transport,
        run._wake,
        interval=_env.env_float("LOUPE_FLUSH_INTERVAL", 0.5),
        max_buffer_bytes=int(_env.env_float("LOUPE_MAX_BUFFER_MB", 50.0) * (1 << 20)),
        heartbeat_interval=_env.env_float("LOUPE_HEARTBEAT_INTERVAL", 30.0),
        backoff_cap=_env.env_float("LOUPE_BACKOFF_CAP", 30.0),
    )
    run._pipeline = pipeline
    pipeline.start(("run", create_body))
    if capture_console and _env.env_bool("LOUPE_CONSOLE", True):
        try:
            cap = Capture(run._console_lines)
            cap.install()
            run._capture = cap
        except Exception as e:
            _warn("console capture failed: %s" % e)
    _all_runs.add(run)
    return run


def _run_dir(dir: Optional[str], rid: str):
    """The run directory and its lock. A directory another live process
    holds, or one that cannot be written, is not used."""
    candidates = []
    if dir:
        candidates.append(os.path.abspath(os.path.expanduser(dir)))
    else:
        candidates.append(os.path.join(_root_dir(), "run-" + rid))
    candidates.append(candidates[0] + "-%d" % os.getpid())
    candidates.append(os.path.join(tempfile.gettempdir(), "loupe", "run-%s-%d" % (rid, os.getpid())))
    for i, d in enumerate(candidates):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            _logger.warning("loupe: cannot use %s (%s)", d, e)
            continue
        other = read_run_json(d)
        if other is not None and other.get("id") not in (None, rid):
            _logger.warning("loupe: %s holds run %s, not %s; not using it", d, other.get("id"), rid)
            continue
        lock = try_lock(d)
        if lock is None:
            _logger.warning("loupe: %s is in use by another process", d)
            continue
        return d, lock
    d = tempfile.mkdtemp(prefix="loupe-run-")
    return d, None


# --- the current run ----------------------------------------------------------------

_warned_no_run = set()


def _no_run(what: str) -> None:
    if what not in _warned_no_run:
        _warned_no_run.add(what)
        _warn("loupe.%s() before loupe.init(): ignored" % what)


def log(data, step=None, commit=True, sync=None) -> None:
    r = _current
    if r is None:
        _no_run("log")
        return
    r.log(data, step, commit)


def finish(exit_code: Optional[int] = None, quiet: Any = None) -> None:
    r = _current
    if r is not None:
        r.finish(exit_code)


def alert(title: str, text: str = "", level: Any = "warning", wait_duration: Any = None) -> None:
    r = _current
    if r is None:
        _no_run("alert")
        return
    r.alert(title, text, level)


def log_text(text: str, level: str = "info", **attributes: Any) -> None:
    r = _current
    if r is None:
        _no_run("log_text")
        return
    r.log_text(text, level, **attributes)


def flush(timeout: Optional[float] = None) -> bool:
    r = _current
    return r.flush(timeout) if r is not None else False


# --- process hooks --------------------------------------------------------------------


def _install_hooks() -> None:
    global _hooks_installed, _prev_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_at_exit)
    _prev_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _excepthook(etype, value, tb) -> None:
    prev = _prev_excepthook or sys.__excepthook__
    try:
        prev(etype, value, tb)
    finally:
        r = _current
        if r is not None and not r._closed:
            try:
                r._exit_with(value, tb)
            except Exception:
                pass


def _at_exit() -> None:
    r = _current
    if r is not None and not r._closed:
        try:
            r.finish()
        except Exception:
            pass


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker…) has the run's objects but not
    its threads: it neither logs nor captures, and leaves the run alone."""
    global _current
    for r in list(_all_runs):
        try:
            r._closed = True
            r._pipeline = None
            r._capture = None
            r._lockfile = None
        except Exception:
            pass
    _current = None
    m = _module()
    if m is not None:
        m.run = None
    # The tees stay installed in the child but capture nothing more.
    for name in ("stdout", "stderr"):
        s = getattr(sys, name, None)
        d = getattr(s, "__dict__", None)
        if d is not None and "_loupe_active" in d:
            d["_loupe_active"] = False

