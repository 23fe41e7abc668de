"""``python -m loupe sync DIR`` (or ``loupe-sync DIR``): uploads what a run
directory's spool holds that the server has not acknowledged, once.

DIR is a run directory (it holds ``run.json`` and ``spool.jsonl``), or a
directory of them (``./loupe`` syncs every run under it). The server is
``--server``, else $LOUPE_SERVER, else the one the run was started with.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import List, Optional, TextIO

from . import _env
from ._http import Client
from ._run import _dumps, _unlock, read_run_json, try_lock
from ._sender import Transport, next_request
from ._spool import Spool

TERMINAL = ("finished", "failed", "crashed", "killed")


class SyncError(Exception):
    pass


def run_dirs(path: str) -> List[str]:
    """``path`` if it is a run directory, else the run directories in it."""
    if os.path.isfile(os.path.join(path, "run.json")):
        return [path]
    out = []
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise SyncError("%s: %s" % (path, e)) from None
    for n in names:
        d = os.path.join(path, n)
        if os.path.isfile(os.path.join(d, "run.json")):
            out.append(d)
    if not out:
        raise SyncError("%s: not a run directory (no run.json) and holds none" % path)
    return out


def sync_dir(
    run_dir: str,
    server: Optional[str] = None,
    token: Optional[str] = None,
    attempts: int = 5,
    out: Optional[TextIO] = None,
) -> dict:
    """Uploads one run directory's unacknowledged spool entries in order.
    Returns counts; raises SyncError when it cannot finish (what was
    uploaded stays acknowledged, so running it again goes on from there)."""
    out = out or sys.stdout
    info = read_run_json(run_dir)
    if info is None or not isinstance(info.get("id"), str):
        raise SyncError("%s: no readable run.json" % run_dir)
    rid = info["id"]
    lock = try_lock(run_dir)
    if lock is None:
        raise SyncError(
            "%s: in use by a live process (pid in %s); it uploads its spool itself"
            % (run_dir, os.path.join(run_dir, "lock"))
        )
    try:
        spool = Spool(run_dir)
        counts = {"run": 0, "metrics": 0, "logs": 0, "patch": 0, "requests": 0}
        if not spool.pending():
            print("loupe sync: run %s: nothing to upload (%s)" % (rid, run_dir), file=out)
            return counts
        url = server or _env.env_str("LOUPE_SERVER") or info.get("server") or _env.DEFAULT_SERVER
        url, token = _env.server_and_token(url, token)
        client = Client(url, token, timeout=_env.env_float("LOUPE_HTTP_TIMEOUT", 30.0))
        create = info.get("create") if isinstance(info.get("create"), dict) else {"id": rid}
        transport = Transport(client, rid, _dumps(create), run_dir, compress=_env.compress_for(url))
        sent_run = False  # this sync created (or resumed) a session of the run
        final = False  # and that session's final status was among what it sent
        failures = 0
        backoff = 0.5
        while spool.pending():
            entries = spool.unacked()
            if not entries:
                spool.ack(spool.last_seq, spool.size)
                break
            j, kind, merged, key = next_request(entries, 0)
            body = entries[0][2]
            if transport.send(kind, merged, key):
                last = entries[j - 1]
                spool.ack(last[0], last[3])
                counts[kind] += j
                counts["requests"] += 1
                failures = 0
                backoff = 0.5
                if kind == "run":
                    sent_run, final = True, False
                elif kind == "patch" and _status_of(body) in TERMINAL:
                    final = True
                continue
            failures += 1
            if failures >= attempts:
                left = spool.last_seq - spool.acked_seq
                raise SyncError(
                    "run %s: %s: %s; %d batch(es) left in %s (run sync again)"
                    % (rid, url, transport.last_error or "failed", left, spool.path)
                )
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
        if sent_run and not final and not info.get("final_status"):
            # The session this sync created never said how it ended: its
            # process is gone (we hold its lock), so it crashed.
            transport.send("patch", b'{"status":"crashed"}')
        print(
            "loupe sync: run %s: uploaded %d metric, %d log, %d update batch(es) in %d request(s) to %s"
            % (rid, counts["metrics"], counts["logs"], counts["patch"] + counts["run"], counts["requests"], url),
            file=out,
        )
        client.close()
        return counts
    finally:
        _unlock(lock)


def _status_of(body: bytes) -> Optional[str]:
    try:
        s = json.loads(body).get("status")
        return s if isinstance(s, str) else None
    except Exception:
        return None


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sync":
        argv = argv[1:]
    p = argparse.ArgumentParser(
        prog="loupe-sync",
        description="Upload what a Loupe run directory's spool holds that the server has not acknowledged, once.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="a run directory, or a directory of them (./loupe)")
    p.add_argument("--server", help="server URL (default: $LOUPE_SERVER, else the run's own)")
    p.add_argument("--token", help="API token (default: $LOUPE_TOKEN)")
    args = p.parse_args(argv)
    code = 0
    for d in args.dirs:
        try:
            dirs = run_dirs(d)
        except SyncError as e:
            print("loupe sync: %s" % e, file=sys.stderr)
            code = 1
            continue
        for rd in dirs:
            try:
                sync_dir(rd, args.server, args.token)
            except SyncError as e:
                print("loupe sync: %s" % e, file=sys.stderr)
                code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
