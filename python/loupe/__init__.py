"""Loupe's Python SDK: log metrics, console output and run metadata from a
training job to a Loupe server.

The common W&B calls work unchanged (``import loupe as wandb``)::

    import loupe
    run = loupe.init(project="vision", config={"lr": 3e-4})
    for step in range(1000):
        loupe.log({"train/loss": loss, "lr": lr})
    loupe.finish()

Logging never raises and never waits on the network: points go to columnar
buffers; a background thread sends them, and spools them to disk while the
server cannot be reached. Standard library only.
"""

__version__ = "0.1.0"

from ._api import alert, finish, flush, init, log, log_text  # noqa: E402
from ._compat import Artifact, Settings  # noqa: E402
from ._run import Config, DisabledRun, LoupeWarning, Run, Summary  # noqa: E402

#: The current run (None before ``init`` and after ``finish``).
run = None
#: The current run's config; before ``init``, a config that ``init`` takes over.
config = Config(None)
#: The current run's summary.
summary = Summary(None)


class _Unsupported:
    """W&B media types (Image, Table, Histogram…): accepted so that code
    written for W&B runs; ``log`` drops them with a warning, since Loupe
    stores numbers."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs

    def __repr__(self):
        return "<loupe.%s (not stored)>" % type(self).__name__


class Image(_Unsupported):
    pass


class Table(_Unsupported):
    pass


class Histogram(_Unsupported):
    pass


class Video(_Unsupported):
    pass


class Audio(_Unsupported):
    pass


class Html(_Unsupported):
    pass


class Object3D(_Unsupported):
    pass


class AlertLevel:
    INFO = "info"
    WARN = "warning"
    ERROR = "error"


def login(*args, **kwargs):
    """W&B's login: Loupe reads LOUPE_SERVER and LOUPE_TOKEN instead."""
    return True


def watch(*args, **kwargs):
    return None


def define_metric(*args, **kwargs):
    """Accepted; see ``Run.define_metric``."""
    return None


def save(*args, **kwargs):
    return False


def log_artifact(artifact=None, name=None, type=None, aliases=None, **kwargs):  # noqa: A002 (W&B's name)
    """The current run's ``log_artifact`` (a run event; no artifact store yet)."""
    return run.log_artifact(artifact, name, type, aliases) if run is not None else artifact


def use_artifact(artifact=None, type=None, **kwargs):  # noqa: A002 (W&B's name)
    return run.use_artifact(artifact, type) if run is not None else artifact


def mark_preempting():
    if run is not None:
        run.mark_preempting()


def setup(settings=None):
    """W&B's ``setup``: nothing to prepare."""
    return None


def teardown(exit_code=None):
    """W&B's ``teardown``: finishes the current run."""
    finish(exit_code)


def termlog(string="", newline=True, repeat=True):
    import sys as _sys

    _sys.stderr.write("loupe: %s%s" % (string, "\n" if newline else ""))


termwarn = termlog
termerror = termlog


__all__ = [
    "init",
    "log",
    "finish",
    "alert",
    "log_text",
    "flush",
    "run",
    "config",
    "summary",
    "Run",
    "Config",
    "Summary",
    "DisabledRun",
    "LoupeWarning",
    "AlertLevel",
    "Image",
    "Table",
    "Histogram",
    "Video",
    "Audio",
    "Html",
    "Object3D",
    "login",
    "watch",
    "define_metric",
    "save",
    "Settings",
    "Artifact",
    "log_artifact",
    "use_artifact",
    "mark_preempting",
    "setup",
    "teardown",
    "termlog",
    "termwarn",
    "termerror",
]
