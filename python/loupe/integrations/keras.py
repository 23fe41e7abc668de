"""Keras 3 (any backend): a ``Callback`` that logs ``model.fit``'s metrics
to Loupe.

    from loupe.integrations.keras import LoupeKerasCallback
    model.fit(x, y, epochs=10, callbacks=[LoupeKerasCallback(project="vision")])

Names follow W&B's ``WandbMetricsLogger``: every ``log_every_n_batches``
batches, ``batch/<metric>`` (Keras' running mean over the epoch so far) and
``batch/learning_rate``; at each epoch's end ``epoch/<metric>`` (validation
metrics as ``epoch/val_<metric>``), ``epoch/epoch`` and
``epoch/learning_rate``. Every point's step is the number of batches trained
so far (``initial_step`` + batches), so batch and epoch series share one
axis. The config holds ``fit``'s parameters (epochs, steps), the optimizer's
config and the model's name and parameter count.

A run started with ``loupe.init`` before ``fit`` is used as it is and left
open; otherwise the callback starts one when training begins and finishes it
when training ends (a later ``fit`` with the same callback resumes that run,
and its steps go on from where the first stopped).
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

import keras

from ._common import RunRef, guarded, numeric_items


def _as_float(x: Any) -> Optional[float]:
    # float() first: Keras variables and backend scalars take it directly,
    # while convert_to_numpy() on a variable warns (a DeprecationWarning from
    # NumPy 2, an exception under -W error) on some backends.
    try:
        return float(x)
    except Exception:
        try:
            return float(keras.ops.convert_to_numpy(x))
        except Exception:
            return None


class LoupeKerasCallback(keras.callbacks.Callback):
    """Logs Keras training metrics to a Loupe run. Keyword arguments are
    ``loupe.init``'s (``project``, ``name``, ``tags``, ``server``, ``mode``…),
    used when the callback starts the run itself.

    - ``log_every_n_batches``: batch metrics every N batches; 0 logs epoch
      metrics only.
    - ``initial_step``: the step of the first batch (a resumed training's).
    """

    def __init__(self, project: Optional[str] = None, name: Optional[str] = None, *, log_every_n_batches: int = 10,
                 initial_step: int = 0, **init_kwargs: Any):
        super().__init__()
        init_kwargs.update(project=project, name=name)
        self._ref = RunRef(init_kwargs)
        self.log_every_n_batches = max(0, int(log_every_n_batches))
        self.step = int(initial_step)

    def _learning_rate(self) -> Optional[float]:
        opt = getattr(self.model, "optimizer", None)
        if opt is None:
            return None
        return _as_float(getattr(opt, "learning_rate", None))

    def _config(self) -> Dict[str, Any]:
        config: Dict[str, Any] = {}
        params = getattr(self, "params", None)
        if isinstance(params, dict):
            config.update({k: v for k, v in params.items() if k in ("epochs", "steps", "batch_size", "samples")})
        model = self.model
        if model is not None:
            config["model_name"] = getattr(model, "name", None)
            try:
                config["model_num_parameters"] = int(model.count_params())
            except Exception:
                pass  # not built yet
            opt = getattr(model, "optimizer", None)
            if opt is not None:
                try:
                    # get_config() reads variables through NumPy, which warns
                    # on some backends: not the user's concern.
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        oc = dict(opt.get_config())
                except Exception:
                    oc = {}
                oc["class"] = type(opt).__name__
                config["optimizer"] = oc
        return config

    @guarded
    def on_train_begin(self, logs=None):
        self._ref.get(self._config())

    @guarded
    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        n = self.log_every_n_batches
        if not n or self.step % n:
            return
        run = self._ref.active()
        if run is None:
            return
        data = {"batch/" + k: v for k, v in numeric_items(logs).items()}
        lr = self._learning_rate()
        if lr is not None:
            data["batch/learning_rate"] = lr
        if data:
            run.log(data, step=self.step)

    @guarded
    def on_epoch_end(self, epoch, logs=None):
        run = self._ref.active() or self._ref.get()
        if run is None:
            return
        data = {"epoch/" + k: v for k, v in numeric_items(logs).items()}
        data["epoch/epoch"] = int(epoch)
        lr = self._learning_rate()
        if lr is not None:
            data["epoch/learning_rate"] = lr
        run.log(data, step=self.step)

    @guarded
    def on_train_end(self, logs=None):
        self._ref.finish()

    @property
    def run(self):
        """The run this callback logs to (None outside of training)."""
        return self._ref.active()
