"""Hugging Face ``transformers``: a ``TrainerCallback`` that logs the
Trainer's metrics to Loupe.

    from loupe.integrations.transformers import LoupeCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[LoupeCallback(project="nlp")])

Names follow the W&B integration, so dashboards carry over: ``loss`` →
``train/loss``, ``eval_loss`` → ``eval/loss``, ``test_acc`` → ``test/acc``;
a name that already has a ``/`` is kept as it is. Points are logged at
``state.global_step``. The end-of-training figures (``train_runtime``,
``train_loss``, ``total_flos``…) go to the run's summary, not to series.
The config is ``args.to_dict()``, with the model's config under ``model``.

Only the world's process zero logs (the Trainer's figures are already
reduced across processes); ``all_ranks=True`` gives every process its own
run. A run started with ``loupe.init`` before training is used as it is and
left open; otherwise the callback starts one at ``on_train_begin`` and
finishes it at ``on_train_end`` (a later ``trainer.evaluate()`` resumes the
same run).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

import transformers

from ._common import RunRef, guarded, numeric_items

# Figures the Trainer logs once, at the end of train(): a summary, not a series.
SUMMARY_KEYS = frozenset(
    ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")
)


def rewrite_name(key: str) -> str:
    """The Trainer's flat metric names as ``train/…``, ``eval/…``, ``test/…``."""
    if "/" in key:
        return key
    if key.startswith("eval_"):
        return "eval/" + key[5:]
    if key.startswith("test_"):
        return "test/" + key[5:]
    return "train/" + key


class LoupeCallback(transformers.TrainerCallback):
    """Logs a ``transformers.Trainer``'s metrics, config and end status to a
    Loupe run. Keyword arguments are ``loupe.init``'s (``project``, ``name``,
    ``tags``, ``group``, ``server``, ``mode``…), used when the callback
    starts the run itself."""

    def __init__(self, project: Optional[str] = None, name: Optional[str] = None, *, all_ranks: bool = False,
                 **init_kwargs: Any):
        init_kwargs.update(project=project, name=name)
        self._ref = RunRef(init_kwargs)
        self.all_ranks = all_ranks

    def _logs_here(self, state: Any) -> bool:
        return self.all_ranks or bool(getattr(state, "is_world_process_zero", True))

    @staticmethod
    def _config(args: Any, model: Any) -> Dict[str, Any]:
        config: Dict[str, Any] = {}
        if args is not None and hasattr(args, "to_dict"):
            # to_dict() masks tokens and turns enums into their values.
            config.update(args.to_dict())
        mc = getattr(model, "config", None)
        if mc is not None and hasattr(mc, "to_dict"):
            config["model"] = mc.to_dict()
        if model is not None and hasattr(model, "num_parameters"):
            try:
                config["model_num_parameters"] = int(model.num_parameters())
            except Exception:
                pass
        return config

    def _start(self, args: Any, state: Any, model: Any) -> None:
        # The Trainer's own run_name and project (its field for trackers)
        # when the callback was not given any; $LOUPE_PROJECT beats the
        # Trainer's default project.
        kwargs = self._ref.init_kwargs
        if getattr(args, "run_name", None):
            kwargs.setdefault("name", args.run_name)
        if getattr(args, "project", None) and not os.environ.get("LOUPE_PROJECT"):
            kwargs.setdefault("project", args.project)
        if getattr(state, "is_hyper_param_search", False):
            # Each trial is its own run: finish the last trial's, start afresh.
            self._ref.finish()
            self._ref = RunRef(self._ref.init_kwargs)
            params = getattr(state, "trial_params", None)
            if params:
                self._ref.init_kwargs["config"] = dict(params)
            if getattr(state, "trial_name", None):
                self._ref.init_kwargs["name"] = str(state.trial_name)
        self._ref.get(self._config(args, model))

    @guarded
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self._logs_here(state):
            self._start(args, state, model)

    @guarded
    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not logs or not self._logs_here(state):
            return
        run = self._ref.active()
        if run is None:
            # evaluate() without train(), or after train() finished the run.
            self._start(args, state, model)
            run = self._ref.active()
            if run is None:
                return
        series: Dict[str, Any] = {}
        summary: Dict[str, Any] = {}
        for k, v in numeric_items(logs).items():
            if k in SUMMARY_KEYS:
                summary[k] = v
            else:
                series[rewrite_name(k)] = v
        if series:
            run.log(series, step=int(state.global_step))
        if summary:
            run.summary.update(summary)

    @guarded
    def on_train_end(self, args, state, control, **kwargs):
        if self._logs_here(state):
            self._ref.finish()

    @property
    def run(self):
        """The run this callback logs to (None before training)."""
        return self._ref.active()
