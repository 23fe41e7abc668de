"""The framework integrations against the real frameworks (each test is
skipped when its framework is not installed) and the real server: a tiny
training run, then what was logged read back through the HTTP API."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
import warnings

import pytest

import loupe

HERE = os.path.dirname(os.path.abspath(__file__))


def have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def test_import_loupe_imports_no_framework():
    code = (
        "import sys, loupe, loupe.integrations; "
        "bad = [m for m in ('transformers', 'keras', 'lightning', 'pytorch_lightning', 'torch', 'jax', "
        "'tensorflow', 'numpy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr


# --- Hugging Face transformers ---------------------------------------------------------


def _hf_objects(tmp_path, **kw):
    transformers = pytest.importorskip("transformers")
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", learning_rate=3e-4,
                                          per_device_train_batch_size=4, run_name="tiny-hf", **kw)
    return transformers, args, transformers.TrainerState(), transformers.TrainerControl()


def test_transformers_callback_hooks_with_real_trainer_objects(tmp_path, server, api):
    """The Trainer's own argument, state and control objects drive the hooks
    the way Trainer.train() calls them (no torch needed)."""
    transformers, args, state, control = _hf_objects(tmp_path)
    from loupe.integrations.transformers import LoupeCallback

    cb = LoupeCallback(project="hf", server=server.url, capture_console=False)
    assert isinstance(cb, transformers.TrainerCallback)
    model = types.SimpleNamespace(config=transformers.BertConfig(hidden_size=16, num_hidden_layers=1))
    state.max_steps = 6
    cb.on_train_begin(args, state, control, model=model)
    run = cb.run
    assert run is not None and loupe.run is run
    losses = [2.5, 2.25, 2.0, 1.5, 1.25, 1.0]
    for step in range(1, 7):
        state.global_step = step
        state.epoch = step / 3
        cb.on_log(args, state, control, logs={"loss": losses[step - 1], "grad_norm": 0.5 + step,
                                              "learning_rate": 3e-4 * (1 - step / 6), "epoch": step / 3})
        if step % 3 == 0:
            cb.on_log(args, state, control, logs={"eval_loss": losses[step - 1] + 0.1, "eval_runtime": 0.25,
                                                  "eval_samples_per_second": 64.0, "epoch": step / 3})
    cb.on_log(args, state, control, logs={"train_runtime": 1.5, "train_samples_per_second": 16.0,
                                          "train_steps_per_second": 4.0, "total_flos": 12345.0,
                                          "train_loss": 1.75, "epoch": 2.0})
    cb.on_train_end(args, state, control)
    assert run._closed and loupe.run is None  # the callback started the run, so it finished it

    r = api.run(run.id)
    assert r["status"] == "finished" and r["project"] == "hf" and r["name"] == "tiny-hf"
    assert r["config"]["learning_rate"] == 3e-4 and r["config"]["per_device_train_batch_size"] == 4
    assert r["config"]["model"]["hidden_size"] == 16
    assert r["summary"]["train_runtime"]["last"] == 1.5 and r["summary"]["train_loss"]["last"] == 1.75
    names = api.series_names(run.id)
    assert {"train/loss", "train/grad_norm", "train/learning_rate", "train/epoch", "eval/loss", "eval/runtime",
            "eval/samples_per_second"} <= set(names)
    assert "train/train_runtime" not in names and "train/total_flos" not in names
    got = api.series(run.id, "train/loss")
    assert got["step"] == [1, 2, 3, 4, 5, 6] and got["y"] == losses
    got = api.series(run.id, "eval/loss")
    assert got["step"] == [3, 6] and got["y"] == [losses[2] + 0.1, losses[5] + 0.1]

    # trainer.evaluate() after train(): the same run, resumed.
    cb.on_log(args, state, control, logs={"eval_loss": 0.75, "epoch": 2.0})
    assert cb.run is not None and cb.run.id == run.id
    cb.run.finish()
    assert api.series(run.id, "eval/loss")["y"] == [losses[2] + 0.1, 0.75]  # step 6 written again: newest wins


def test_transformers_callback_uses_the_users_run_and_leaves_it_open(tmp_path, server, api):
    _transformers, args, state, control = _hf_objects(tmp_path)
    from loupe.integrations.transformers import LoupeCallback

    mine = loupe.init(project="mine", server=server.url, capture_console=False)
    cb = LoupeCallback()
    cb.on_train_begin(args, state, control)
    state.global_step = 10
    cb.on_log(args, state, control, logs={"loss": 0.5, "eval/acc": 0.9, "note": "strings are left out"})
    cb.on_train_end(args, state, control)
    assert cb.run is mine and not mine._closed
    mine.finish()
    assert api.series(mine.id, "train/loss")["y"] == [0.5]
    assert api.series(mine.id, "eval/acc")["step"] == [10]  # a name with a "/" is kept as it is
    assert api.run(mine.id)["config"]["learning_rate"] == 3e-4


def test_transformers_callback_logs_on_process_zero_only(tmp_path, server):
    _transformers, args, state, control = _hf_objects(tmp_path)
    from loupe.integrations.transformers import LoupeCallback

    state.is_world_process_zero = False
    cb = LoupeCallback(server=server.url, capture_console=False)
    cb.on_train_begin(args, state, control)
    cb.on_log(args, state, control, logs={"loss": 1.0})
    cb.on_train_end(args, state, control)
    assert cb.run is None and loupe.run is None


def test_transformers_callback_gives_each_search_trial_its_own_run(tmp_path, server, api):
    _transformers, args, state, control = _hf_objects(tmp_path)
    from loupe.integrations.transformers import LoupeCallback

    cb = LoupeCallback(project="search", server=server.url, capture_console=False)
    state.is_hyper_param_search = True
    ids = []
    for n, lr in enumerate((0.1, 0.01)):
        state.trial_name, state.trial_params = "trial-%d" % n, {"trial_lr": lr}
        cb.on_train_begin(args, state, control)
        state.global_step = 1
        cb.on_log(args, state, control, logs={"loss": lr})
        ids.append(cb.run.id)
        cb.on_train_end(args, state, control)
    assert ids[0] != ids[1]
    for n, (rid, lr) in enumerate(zip(ids, (0.1, 0.01))):
        r = api.run(rid)
        assert r["name"] == "trial-%d" % n and r["config"]["trial_lr"] == lr and r["status"] == "finished"
        assert api.series(rid, "train/loss")["y"] == [lr]


def test_transformers_callback_never_raises(tmp_path, server):
    _transformers, args, state, control = _hf_objects(tmp_path)
    from loupe.integrations.transformers import LoupeCallback

    cb = LoupeCallback(server=server.url, mode="no-such-mode")  # init refuses the mode
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cb.on_train_begin(args, state, control)
        cb.on_log(args, state, control, logs={"loss": 1.0})
        cb.on_train_end(args, state, control)
    assert any(issubclass(w.category, loupe.LoupeWarning) and "no-such-mode" in str(w.message) for w in seen)
    assert cb.run is None


@pytest.mark.skipif(not have("torch", "transformers", "accelerate"), reason="needs torch, transformers, accelerate")
def test_transformers_trainer_end_to_end(tmp_path, server, api):
    import torch
    import transformers

    from loupe.integrations.transformers import LoupeCallback

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                     intermediate_size=8, max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    rows = [{"input_ids": torch.randint(1, 32, (8,)), "attention_mask": torch.ones(8, dtype=torch.long),
             "labels": torch.tensor(i % 2)} for i in range(16)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=6, logging_steps=2, per_device_train_batch_size=4,
        eval_strategy="steps", eval_steps=3, save_strategy="no", report_to="none", use_cpu=True,
        disable_tqdm=True, run_name="bert-tiny")
    cb = LoupeCallback(project="hf-e2e", server=server.url, capture_console=False)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows[:8],
                                   callbacks=[cb])
    trainer.train()
    rid = cb._ref._finished_id  # the run the callback started, and finished at on_train_end
    assert rid is not None and cb.run is None
    r = api.run(rid)
    assert r["status"] == "finished" and r["name"] == "bert-tiny"
    assert r["config"]["max_steps"] == 6 and r["config"]["model"]["hidden_size"] == 8
    assert api.series(rid, "train/loss")["step"] == [2, 4, 6]
    assert api.series(rid, "eval/loss")["step"] == [3, 6]
    assert "train_runtime" in r["summary"]
    trainer.evaluate()
    assert cb.run.id == rid  # evaluate() after train() resumes the same run
    cb.run.finish()


# --- Keras -----------------------------------------------------------------------------


def _keras():
    if not os.environ.get("KERAS_BACKEND"):
        # The lightest backend that is installed (Keras' default is TensorFlow).
        for b in ("jax", "torch", "tensorflow"):
            if have(b):
                os.environ["KERAS_BACKEND"] = b
                break
    return pytest.importorskip("keras")


def test_keras_fit_end_to_end(server, api):
    keras = _keras()
    np = pytest.importorskip("numpy")
    from loupe.integrations.keras import LoupeKerasCallback

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)],
                             name="tiny_mlp")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"])
    x = np.random.RandomState(0).rand(64, 4).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    cb = LoupeKerasCallback(project="keras", server=server.url, capture_console=False, log_every_n_batches=2)
    # 48 training rows in batches of 8: 6 batches an epoch.
    hist = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, verbose=0, callbacks=[cb])
    assert cb.run is None and loupe.run is None  # finished at the end of fit
    rid = cb._ref._finished_id
    r = api.run(rid)
    assert r["status"] == "finished" and r["project"] == "keras"
    assert r["config"]["epochs"] == 2 and r["config"]["steps"] == 6
    assert r["config"]["model_name"] == "tiny_mlp" and r["config"]["model_num_parameters"] == 4 * 8 + 8 + 8 + 1
    assert r["config"]["optimizer"]["class"] == "Adam"
    assert abs(r["config"]["optimizer"]["learning_rate"] - 1e-3) < 1e-9
    assert api.series(rid, "batch/loss")["step"] == [2, 4, 6, 8, 10, 12]
    assert api.series(rid, "batch/mae")["step"] == [2, 4, 6, 8, 10, 12]
    for name in ("loss", "mae", "val_loss", "val_mae"):
        got = api.series(rid, "epoch/" + name)
        assert got["step"] == [6, 12]
        assert got["y"] == pytest.approx(hist.history[name], rel=1e-6)
    assert api.series(rid, "epoch/epoch")["y"] == [0, 1]
    assert api.series(rid, "epoch/learning_rate")["y"] == pytest.approx([1e-3, 1e-3])

    # Another fit with the same callback: the same run, steps going on.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[cb])
    assert cb._ref._finished_id == rid
    assert api.series(rid, "epoch/loss")["step"] == [6, 12, 20]  # 64 rows, no validation: 8 batches
    assert api.run(rid)["status"] == "finished"


# --- PyTorch Lightning -----------------------------------------------------------------


def _lightning():
    pytest.importorskip("torch")
    try:
        import lightning.pytorch as pl
    except ImportError:
        pl = pytest.importorskip("pytorch_lightning")
    return pl


def test_lightning_logger_end_to_end(tmp_path, server, api):
    pl = _lightning()
    import torch

    from loupe.integrations.lightning import LoupeLogger

    class Tiny(pl.LightningModule):
        def __init__(self, lr=0.05):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, _i):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _i):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    x = torch.rand(16, 4)
    ds = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    logger = LoupeLogger(project="lightning", name="tiny", server=server.url, capture_console=False)
    rid = logger.version  # fixed before anything is logged
    assert logger.name == "lightning"
    trainer = pl.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         default_root_dir=str(tmp_path))
    trainer.fit(Tiny(), loader, loader)
    assert logger.run is None  # finalize("success") finished it
    r = api.run(rid)
    assert r["status"] == "finished" and r["name"] == "tiny"
    assert r["config"]["lr"] == 0.05
    steps = api.series(rid, "train_loss")["step"]
    assert steps == list(range(steps[0], steps[0] + 8))  # Lightning's global step, 4 batches an epoch
    assert len(api.series(rid, "val_loss")["y"]) == 2
    trainer.validate(Tiny(), loader)  # after fit: the same run again
    assert logger.version == rid


def test_lightning_logger_failed_fit_marks_the_run_failed(tmp_path, server, api):
    pl = _lightning()
    import torch

    from loupe.integrations.lightning import LoupeLogger

    class Boom(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, i):
            if i == 2:
                raise RuntimeError("boom")
            loss = self.layer(batch[0]).sum()
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    ds = torch.utils.data.TensorDataset(torch.rand(16, 2))
    logger = LoupeLogger(server=server.url, capture_console=False)
    trainer = pl.Trainer(max_epochs=1, logger=logger, log_every_n_steps=1, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         default_root_dir=str(tmp_path))
    with pytest.raises(RuntimeError):
        trainer.fit(Boom(), torch.utils.data.DataLoader(ds, batch_size=4))
    assert api.run(logger.version)["status"] == "failed"
