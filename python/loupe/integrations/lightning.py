"""PyTorch Lightning: a ``Logger`` that sends what ``self.log(...)`` records
to Loupe. Works with ``lightning`` (``lightning.pytorch``) and with the older
``pytorch_lightning`` package, whichever is installed.

    from loupe.integrations.lightning import LoupeLogger
    trainer = lightning.Trainer(logger=LoupeLogger(project="vision", name="resnet"), max_epochs=10)

``log_metrics`` logs the metrics as Lightning names them at Lightning's step
(its global step); ``log_hyperparams`` (the module's ``save_hyperparameters``)
goes to the run's config. Only rank zero logs, as with Lightning's own
loggers. ``name`` is the project, ``version`` the run id (fixed when the
logger is made, so checkpoint paths can use it before anything is logged),
``experiment`` the ``loupe.Run``.

A run started with ``loupe.init`` before the Trainer is used as it is and
left open. Otherwise the logger starts one when it first needs it and
finishes it at ``finalize``: ``finished`` after success, ``failed`` after an
exception. A later ``trainer.test()`` or ``fit()`` with the same logger
resumes the same run.
"""

from __future__ import annotations

import os
from argparse import Namespace
from typing import Any, Dict, Mapping, Optional, Union

try:
    from lightning.pytorch.loggers import Logger as _LightningLogger
    from lightning.pytorch.loggers.logger import rank_zero_experiment
    from lightning.pytorch.utilities import rank_zero_only
except ImportError:
    from pytorch_lightning.loggers import Logger as _LightningLogger
    from pytorch_lightning.loggers.logger import rank_zero_experiment
    from pytorch_lightning.utilities import rank_zero_only

from .. import _api
from ._common import RunRef, guarded


class LoupeLogger(_LightningLogger):
    """A Lightning logger writing to a Loupe run. Keyword arguments are
    ``loupe.init``'s (``project``, ``name``, ``tags``, ``group``, ``server``,
    ``mode``, ``id``…), used when the logger starts the run itself."""

    def __init__(self, project: Optional[str] = None, name: Optional[str] = None, **init_kwargs: Any):
        super().__init__()
        # The id is fixed now, as loupe.init would fix it (id=, resume=,
        # $LOUPE_RUN_ID), so that ``version`` needs no run yet.
        rid, _ = _api._resolve_id(init_kwargs.pop("resume", None), init_kwargs.pop("id", None))
        self._id = rid or _api._new_id()
        rid = self._id
        self._project = project or os.environ.get("LOUPE_PROJECT")
        init_kwargs.update(project=project, name=name, id=rid)
        self._ref = RunRef(init_kwargs)

    # --- what Lightning asks of a logger -------------------------------------------

    @property
    def name(self) -> Optional[str]:
        return self._project or "loupe"

    @property
    def version(self) -> Union[int, str]:
        r = self._ref.active()
        return r.id if r is not None else self._id

    @property
    def save_dir(self) -> Optional[str]:
        return None  # the run's data lives on the server; checkpoints go to the Trainer's default_root_dir

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``loupe.Run`` (started if need be)."""
        return self._ref.get()

    @rank_zero_only
    @guarded
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace, None], *args: Any, **kwargs: Any) -> None:
        if params is None:
            return
        if isinstance(params, Namespace):
            params = vars(params)
        self._ref.get(dict(params))

    @rank_zero_only
    @guarded
    def log_metrics(self, metrics: Mapping[str, float], step: Optional[int] = None) -> None:
        run = self._ref.get()
        if run is None or not metrics:
            return
        run.log(dict(metrics), step=step)

    @rank_zero_only
    @guarded
    def finalize(self, status: str) -> None:
        if status == "success":
            self._ref.finish(exit_code=0)
        elif status == "failed":
            self._ref.finish(exit_code=1)
        else:
            # "finished": a SLURM requeue signal, and the job goes on later.
            r = self._ref.active()
            if r is not None:
                r.flush()

    @property
    def run(self):
        """The run this logger writes to (None before it started one)."""
        return self._ref.active()

    def __getstate__(self) -> Dict[str, Any]:
        # Spawn-based strategies pickle the Trainer and its loggers: a live
        # run (threads, locks, sockets) cannot travel, its id and arguments
        # can, and the process that logs starts or resumes the run itself.
        state = self.__dict__.copy()
        ref = RunRef({})
        ref.init_kwargs = dict(self._ref.init_kwargs)
        ref._finished_id = self._ref._finished_id
        state["_ref"] = ref
        return state
