"""What the integrations share: which run they log to, and a guard that
keeps a bug in an integration (or a surprise from a framework) out of the
training loop."""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Dict, Optional

from .. import _api
from .._run import Run, _warn

_logger = logging.getLogger("loupe")


class RunRef:
    """The run an integration logs to.

    - A run the user started (``loupe.init`` before training) is used as it
      is and never finished by the integration: the user's script owns it.
    - Otherwise the integration starts one with its ``init`` arguments when
      it first needs it, and finishes it when the framework says training
      is over. If the framework logs again after that (``trainer.evaluate()``
      after ``trainer.train()``, ``trainer.test()`` after ``trainer.fit()``),
      the same run is resumed under its id, so everything of one training
      job stays in one run.
    """

    def __init__(self, init_kwargs: Dict[str, Any]):
        self.init_kwargs = {k: v for k, v in init_kwargs.items() if v is not None}
        self.run: Optional[Run] = None
        self.owned = False
        self._finished_id: Optional[str] = None

    def get(self, config: Optional[dict] = None) -> Optional[Run]:
        """The run to log to, started (or resumed) if need be; config
        given here is merged into it."""
        r = self.run
        if r is not None and not r._closed:
            if config:
                r.config.update(config)
            return r
        current = _api._current
        if current is not None and not current._closed:
            self.run, self.owned = current, False
            if config:
                current.config.update(config)
            return current
        kwargs = dict(self.init_kwargs)
        if config:
            given = kwargs.get("config")
            merged = dict(config)
            if isinstance(given, dict):
                merged.update(given)  # what the user passed wins
            kwargs["config"] = merged
        if self._finished_id is not None and "resume" not in kwargs and "id" not in kwargs:
            kwargs["resume"] = self._finished_id
        from .. import init

        self.run = init(**kwargs)
        self.owned = True
        return self.run

    def active(self) -> Optional[Run]:
        """The run if one is open, without starting one."""
        r = self.run
        if r is not None and not r._closed:
            return r
        return None

    def finish(self, exit_code: int = 0, status: Optional[str] = None) -> None:
        """Finishes the run if the integration started it. A run the user
        started is left alone: the user's script finishes it, and its
        uploads go on in the background meanwhile."""
        r = self.active()
        if r is None or not self.owned:
            return
        self._finished_id = r.id
        r.finish(exit_code=exit_code, status=status)


def guarded(fn: Callable) -> Callable:
    """A hook that never raises into the training loop: an exception is
    reported once per hook as a LoupeWarning and the hook returns None."""
    warned = []

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if not warned:
                warned.append(True)
                _warn("%s: %s: %s (ignored)" % (fn.__qualname__, type(e).__name__, e))
            return None

    return wrapper


def numeric_items(d: Any) -> Dict[str, Any]:
    """The entries of a framework's metrics dict that are worth a log()
    call: strings and None (Keras and the Trainer put a few in) are left
    out here rather than warned about by log()."""
    if not hasattr(d, "items"):
        return {}
    return {str(k): v for k, v in d.items() if v is not None and not isinstance(v, (str, bytes))}
