"""What the SDK learns from the process it runs in: settings from the
environment, the rank in a distributed job, host, command line, git commit."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
from typing import Dict, Optional, Tuple

DEFAULT_SERVER = "http://127.0.0.1:7070"


def env_str(name: str) -> Optional[str]:
    v = os.environ.get(name)
    if v is None or v.strip() == "":
        return None
    return v.strip()


def env_float(name: str, default: float) -> float:
    v = env_str(name)
    if v is None:
        return default
    try:
        f = float(v)
    except ValueError:
        return default
    return f if f == f and f >= 0 else default


def env_bool(name: str, default: bool) -> bool:
    v = env_str(name)
    if v is None:
        return default
    return v.lower() not in ("0", "false", "no", "off")


def _int(v: Optional[str]) -> Optional[int]:
    if v is None:
        return None
    try:
        return int(v.strip())
    except ValueError:
        return None


# (rank variable, world size variable), first match wins: torchrun sets RANK
# even inside a SLURM allocation, where SLURM_PROCID names the launcher task.
_RANK_SOURCES = (
    ("RANK", "WORLD_SIZE"),
    ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("PMI_RANK", "PMI_SIZE"),
    ("SLURM_PROCID", "SLURM_NTASKS"),
)


def distributed(environ: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    """Rank, world size, local rank and group of a distributed job, from
    torchrun, OpenMPI, PMI (MPICH, Intel MPI) or SLURM variables."""
    env = os.environ if environ is None else environ
    rank = world = None
    source = None
    for r_var, w_var in _RANK_SOURCES:
        r = _int(env.get(r_var))
        if r is not None:
            rank, world, source = r, _int(env.get(w_var)), r_var
            break
    # The server refuses rank >= world_size; a broken environment must not
    # cost the run.
    if rank is not None and rank < 0:
        rank = None
    if world is not None and world < 1:
        world = None
    if rank is not None and world is not None and rank >= world:
        rank = world = None
    local_rank = _int(env.get("LOCAL_RANK"))
    if local_rank is None:
        local_rank = _int(env.get("OMPI_COMM_WORLD_LOCAL_RANK"))
    if local_rank is None:
        local_rank = _int(env.get("SLURM_LOCALID"))
    group = (env.get("LOUPE_GROUP") or "").strip() or None
    if group is None:
        run_id = (env.get("TORCHELASTIC_RUN_ID") or "").strip()
        if run_id and run_id != "none":
            group = run_id
    if group is None and source == "SLURM_PROCID" and (world or 0) > 1:
        job = (env.get("SLURM_JOB_ID") or "").strip()
        if job:
            group = "slurm-" + job
    return {"rank": rank, "world_size": world, "local_rank": local_rank, "group": group}


def host() -> Optional[str]:
    try:
        return socket.gethostname() or None
    except Exception:
        return None


def command_line() -> Optional[str]:
    try:
        argv = list(sys.argv)
        if not argv or argv == [""]:
            return None
        return " ".join(shlex.quote(a) for a in argv)
    except Exception:
        return None


def git_commit(timeout: float = 2.0) -> Optional[str]:
    """`git rev-parse HEAD` in the script's directory; None when it is not a
    repository, git is missing, or git takes too long."""
    try:
        script = sys.argv[0] if sys.argv else ""
        cwd = os.path.dirname(os.path.abspath(script)) if script and os.path.exists(script) else os.getcwd()
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            return None
        sha = out.stdout.decode("ascii", "replace").strip()
        return sha if 7 <= len(sha) <= 64 else None
    except Exception:
        return None


def server_and_token(server: Optional[str], token: Optional[str]) -> Tuple[str, Optional[str]]:
    s = server or env_str("LOUPE_SERVER") or DEFAULT_SERVER
    if "://" not in s:
        s = "http://" + s
    return s.rstrip("/"), token or env_str("LOUPE_TOKEN")


def compress_for(server: str) -> bool:
    """Whether to gzip metric and log bodies. LOUPE_COMPRESS: "gzip" (or
    1/true) always, "none" (or 0/false) never, "auto" (the default): gzip
    unless the server is on this machine, where bandwidth is free and the
    CPU is the training job's."""
    v = (env_str("LOUPE_COMPRESS") or "auto").lower()
    if v in ("gzip", "1", "true", "yes", "on"):
        return True
    if v in ("none", "0", "false", "no", "off"):
        return False
    import urllib.parse

    host = (urllib.parse.urlsplit(server).hostname or "").lower()
    return not (host in ("localhost", "::1") or host.startswith("127."))
