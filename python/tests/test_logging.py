"""What is logged reads back exactly through the API."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import warnings

import pytest

import loupe
from loupe import _env


def sdk_env():
    """The environment for a subprocess that imports this checkout's SDK."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.pathsep + env.get(
        "PYTHONPATH", "")
    return env


def finished(run):
    run.finish()
    return run.id


def test_values_read_back_exactly(server, api):
    values = [0.1, -2.5, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 3, -7, 2**53 + 1, True, False,
              float("nan"), float("inf"), float("-inf"), 1 / 3, math.pi]
    t0 = time.time_ns()
    run = loupe.init(project="values", server=server.url)
    for v in values:
        run.log({"v": v})
    t1 = time.time_ns()
    rid = finished(run)

    got = api.series(rid, "v")
    assert got["step"] == list(range(len(values)))
    expected = []
    for v in values:
        f = float(v)
        expected.append("NaN" if f != f else "Infinity" if f == math.inf else "-Infinity" if f == -math.inf else f)
    assert got["y"] == expected
    # Bit-exact, including -0.0 and the smallest subnormal.
    for y, v in zip(got["y"], values):
        if not isinstance(y, str):
            assert math.copysign(1, y) == math.copysign(1, float(v)) and y == float(v)
    for t in got["time_ns"]:
        assert t0 - 1000 <= t <= t1 + 1000


def test_many_series_and_points(server, api):
    run = loupe.init(project="values", server=server.url)
    n = 3000
    for i in range(n):
        run.log({"train/loss": 1.0 / (i + 1), "train/acc": i * 0.001, "lr": 3e-4, "step_int": i})
    rid = finished(run)
    assert api.series_names(rid) == ["lr", "step_int", "train/acc", "train/loss"]
    loss = api.series(rid, "train/loss")
    assert loss["step"] == list(range(n))
    assert loss["y"] == [1.0 / (i + 1) for i in range(n)]
    assert api.series(rid, "step_int")["y"] == [float(i) for i in range(n)]


def test_nested_dicts_flatten_with_slash(server, api):
    run = loupe.init(server=server.url)
    run.log({"train": {"loss": 1.5, "opt": {"lr": 0.1}}, "eval/acc": 0.5})
    rid = finished(run)
    assert api.series_names(rid) == ["eval/acc", "train/loss", "train/opt/lr"]
    assert api.series(rid, "train/opt/lr")["y"] == [0.1]


def test_step_semantics_follow_wandb(server, api):
    run = loupe.init(server=server.url)
    run.log({"a": 1})  # step 0
    run.log({"a": 2})  # step 1
    run.log({"b": 10}, commit=False)  # step 2, not committed
    run.log({"c": 20}, commit=False)  # step 2
    run.log({"a": 3})  # step 2, committed
    run.log({"a": 4})  # step 3
    run.log({"a": 5}, step=100)  # explicit
    run.log({"a": 6})  # 101
    run.log({"a": 7}, step=50)  # going back is allowed: newest write wins
    assert run.step == 51
    rid = finished(run)
    assert api.series(rid, "a")["step"] == [0, 1, 2, 3, 50, 100, 101]
    assert api.series(rid, "a")["y"] == [1.0, 2.0, 3.0, 4.0, 7.0, 5.0, 6.0]
    assert api.series(rid, "b")["step"] == [2]
    assert api.series(rid, "c")["step"] == [2]


def test_numpy_scalars_and_arrays(server, api):
    np = pytest.importorskip("numpy")
    run = loupe.init(server=server.url)
    vals = {
        "f32": np.float32(0.1),
        "f64": np.float64(2.0 / 3),
        "f16": np.float16(1.5),
        "i64": np.int64(-(2**40)),
        "u8": np.uint8(200),
        "b": np.bool_(True),
        "arr0d": np.array(1.25),
        "arr1": np.array([7.5]),
        "nan32": np.float32("nan"),
    }
    run.log(vals)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        run.log({"vec": np.array([1.0, 2.0])})
    assert any("vec" in str(x.message) for x in w)
    rid = finished(run)
    assert api.series(rid, "f32")["y"] == [float(np.float32(0.1))]
    assert api.series(rid, "f64")["y"] == [2.0 / 3]
    assert api.series(rid, "f16")["y"] == [1.5]
    assert api.series(rid, "i64")["y"] == [float(-(2**40))]
    assert api.series(rid, "u8")["y"] == [200.0]
    assert api.series(rid, "b")["y"] == [1.0]
    assert api.series(rid, "arr0d")["y"] == [1.25]
    assert api.series(rid, "arr1")["y"] == [7.5]
    assert api.series(rid, "nan32")["y"] == ["NaN"]
    assert "vec" not in api.series_names(rid)


class FakeTensor:
    """Quacks like a torch tensor; torch itself is never imported."""

    def __init__(self, *values):
        self.values = values
        self.ndim = 0 if len(values) == 1 else 1

    def numel(self):
        return len(self.values)

    def item(self):
        if len(self.values) != 1:
            raise RuntimeError("a Tensor with %d elements cannot be converted to Scalar" % len(self.values))
        return self.values[0]


def test_tensor_like_values_by_duck_typing(server, api):
    run = loupe.init(server=server.url)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        run.log({"loss": FakeTensor(0.25), "many": FakeTensor(1.0, 2.0)})
    assert [str(x.message) for x in w if "many" in str(x.message)]
    rid = finished(run)
    assert api.series(rid, "loss")["y"] == [0.25]
    assert "many" not in api.series_names(rid)
    # The SDK itself never imports numpy or torch.
    code = ("import sys, loupe; r = loupe.init(mode='offline'); r.log({'x': 1}); r.finish(); "
            "print('numpy' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=sdk_env())
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_unsupported_values_dropped_with_one_warning_per_key(server, api):
    run = loupe.init(server=server.url)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for i in range(50):
            run.log({"ok": i, "s": "text", "l": [1, 2], "n": None, "img": loupe.Image("x.png"), "c": 1j})
    msgs = [str(x.message) for x in w if issubclass(x.category, loupe.LoupeWarning)]
    for key in ("'s'", "'l'", "'n'", "'img'", "'c'"):
        assert sum(key in m for m in msgs) == 1, (key, msgs)
    rid = finished(run)
    assert api.series_names(rid) == ["ok"]
    assert len(api.series(rid, "ok")["y"]) == 50


def test_log_never_raises_even_with_warnings_as_errors(server):
    run = loupe.init(server=server.url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run.log({"s": "text"})
        run.log("not a dict")  # type: ignore[arg-type]
        run.log(None)  # type: ignore[arg-type]
        run.log({"": 1.0, "x" * 300: 2.0, "nul\x00": 3.0})  # names the server refuses
        run.log({"a": 1}, step="seven")  # type: ignore[arg-type]
        run.log({"a": 1}, step=2**70)
        run.log({("tuple", "key"): 1.0})  # type: ignore[dict-item]
        run.log({"big": 10**400})
        run.alert("t", "x", level=object())
        run.config.update(42)  # not a mapping
        run.summary["s"] = "text"
    run.finish()
    # After finish, everything is a no-op.
    run.log({"a": 1})
    run.alert("late")


def test_config_summary_tags_notes_status(server, api):
    run = loupe.init(project="meta", name="exp-1", config={"lr": 0.1, "opt": {"name": "adam"}},
                     tags=["a", "b"], notes="first try", server=server.url)
    run.config.batch_size = 32
    run.config["epochs"] = 3
    run.config.update({"opt": {"beta1": 0.9}, "nan": float("nan")})
    assert run.config.lr == 0.1 and run.config["batch_size"] == 32
    assert run.config.opt == {"name": "adam", "beta1": 0.9}
    run.summary["best_acc"] = 0.93
    run.summary.update({"eval": {"loss": 0.5}})
    run.tags = run.tags + ("c",)
    run.log({"x": 1})
    run.finish(exit_code=0)
    r = api.run(run.id)
    assert r["project"] == "meta" and r["name"] == "exp-1"
    assert r["config"] == {"lr": 0.1, "opt": {"name": "adam", "beta1": 0.9}, "batch_size": 32, "epochs": 3,
                           "nan": "NaN"}
    assert r["summary"]["best_acc"]["last"] == 0.93
    assert r["summary"]["eval/loss"]["last"] == 0.5
    assert r["tags"] == ["a", "b", "c"]
    assert r["notes"] == "first try"
    assert r["status"] == "finished" and r["exit_code"] == 0
    assert r["end_time"] is not None
    assert r["host"] == _env.host()
    assert r["command"]


def test_nonzero_exit_code_is_failed(server, api):
    run = loupe.init(server=server.url)
    run.finish(exit_code=3)
    r = api.run(run.id)
    assert r["status"] == "failed" and r["exit_code"] == 3


def test_context_manager_exception_fails_run_with_traceback(server, api):
    with pytest.raises(ZeroDivisionError):
        with loupe.init(server=server.url) as run:
            run.log({"x": 1})
            1 / 0  # noqa: B018
    r = api.run(run.id)
    assert r["status"] == "failed" and r["exit_code"] == 1
    recs = api.logs(run.id, q="ZeroDivisionError")
    tb = [x for x in recs if x["stream"] == "app"]
    assert tb and "Traceback" in tb[0]["text"] and tb[0]["level"] == "error"
    assert tb[0]["attributes"]["exception"] == "ZeroDivisionError"


def test_context_manager_clean_exit_finishes(server, api):
    with loupe.init(server=server.url) as run:
        run.log({"x": 1})
    assert api.run(run.id)["status"] == "finished"
    assert loupe.run is None


def test_alert_is_an_app_record(server, api):
    run = loupe.init(server=server.url)
    run.alert("Loss diverged", "loss is NaN at step 12", level="error")
    loupe.alert("Slow", "throughput dropped", level=loupe.AlertLevel.WARN)
    rid = finished(run)
    recs = [r for r in api.logs(rid) if r["stream"] == "app"]
    assert [(r["level"], r["text"], r["attributes"]) for r in recs] == [
        ("error", "Loss diverged: loss is NaN at step 12", {"alert": "true", "title": "Loss diverged"}),
        ("warning", "Slow: throughput dropped", {"alert": "true", "title": "Slow"}),
    ]


def test_wandb_style_module_api(server, api, monkeypatch):
    import loupe as wandb

    monkeypatch.setenv("LOUPE_SERVER", server.url)
    wandb.config.pre_init = 1  # taken over by init
    wandb.init(project="compat", config={"lr": 1e-3})
    assert wandb.run is not None
    wandb.config.update({"bs": 8})
    wandb.config.wd = 0.01
    for i in range(5):
        wandb.log({"loss": 1.0 / (i + 1)})
    wandb.summary["final"] = 0.2
    wandb.define_metric("loss", summary="min")
    wandb.watch(object())
    rid = wandb.run.id
    wandb.finish()
    assert wandb.run is None
    r = api.run(rid)
    assert r["config"] == {"pre_init": 1, "lr": 1e-3, "bs": 8, "wd": 0.01}
    assert r["summary"]["final"]["last"] == 0.2
    assert api.series(rid, "loss")["step"] == [0, 1, 2, 3, 4]
    with pytest.warns(loupe.LoupeWarning, match="before loupe.init"):
        wandb.log({"after": 1})  # no run: ignored, no exception


def test_resume_continues_from_resume_step(server, api):
    run = loupe.init(server=server.url, config={"lr": 0.1})
    for i in range(10):
        run.log({"loss": float(i)})
    rid = finished(run)

    run2 = loupe.init(resume=rid, resume_step=5, server=server.url, config={"resumed": True})
    assert run2.id == rid and run2.step == 5
    for i in range(5, 8):
        run2.log({"loss": 100.0 + i})
    run2.finish()
    got = api.series(rid, "loss")
    assert got["step"] == list(range(10))
    assert got["y"] == [0.0, 1.0, 2.0, 3.0, 4.0, 105.0, 106.0, 107.0, 8.0, 9.0]
    r = api.run(rid)
    assert r["resumes"] == 1 and r["status"] == "finished"
    assert r["config"] == {"lr": 0.1, "resumed": True}

    # id= does the same.
    run3 = loupe.init(id=rid, resume_step=10, server=server.url)
    run3.log({"loss": 10.0})
    run3.finish()
    assert api.series(rid, "loss")["step"][-1] == 10
    assert api.run(rid)["resumes"] == 2


def test_distributed_environment(server, api, monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-42")
    run = loupe.init(server=server.url)
    assert run.local_rank == 1
    rid = finished(run)
    r = api.run(rid)
    assert (r["rank"], r["world_size"], r["group"]) == (3, 8, "job-42")


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, (1, 2, None)),
        ({"SLURM_PROCID": "2", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "77"}, (2, 4, "slurm-77")),
        ({"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "6"}, (5, 6, None)),
        ({"PMI_RANK": "0", "PMI_SIZE": "2", "LOUPE_GROUP": "g"}, (0, 2, "g")),
        ({"RANK": "9", "WORLD_SIZE": "2"}, (None, None, None)),  # inconsistent: not sent
        ({"RANK": "x"}, (None, None, None)),
        ({"TORCHELASTIC_RUN_ID": "none", "RANK": "0", "WORLD_SIZE": "1"}, (0, 1, None)),
    ],
)
def test_rank_detection(env, expected):
    d = _env.distributed(env)
    assert (d["rank"], d["world_size"], d["group"]) == expected


def test_heartbeat_keeps_run_alive(server, api, monkeypatch):
    monkeypatch.setenv("LOUPE_HEARTBEAT_INTERVAL", "0.2")
    run = loupe.init(server=server.url)
    run.log({"x": 1})
    assert run.flush(5)
    first = api.run(run.id)["heartbeat_time"]
    deadline = time.time() + 5
    while api.run(run.id)["heartbeat_time"] == first and time.time() < deadline:
        time.sleep(0.1)
    assert api.run(run.id)["heartbeat_time"] > first
    run.finish()


def test_disabled_mode_is_a_noop(fake_server, tmp_path):
    fake = fake_server("ok")
    run = loupe.init(mode="disabled", server=fake.url, config={"a": 1})
    assert loupe.run is run and run.disabled
    run.log({"x": 1})
    loupe.log({"x": 2})
    run.config.b = 2
    run.summary["s"] = 1
    run.alert("t", "x")
    assert run.flush() is True
    with run:
        pass
    run.finish()
    assert fake.requests == []
    assert not (tmp_path / "runs").exists()
    assert run.config.a == 1 and run.config.b == 2


def test_fork_child_leaves_run_alone(server, api):
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    run = loupe.init(server=server.url)
    run.log({"x": 1.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded, fork() may deadlock"
        pid = os.fork()
    if pid == 0:  # the child: a DataLoader worker, say
        try:
            loupe.log({"x": 99.0})
            print("from the child")
            run.log({"child": 1.0})
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    run.log({"x": 2.0})
    rid = finished(run)
    assert api.series(rid, "x")["y"] == [1.0, 2.0]
    assert "child" not in api.series_names(rid)


def test_gzip_bodies(server, api, monkeypatch):
    monkeypatch.setenv("LOUPE_COMPRESS", "gzip")
    run = loupe.init(server=server.url)
    for i in range(2000):
        run.log({"a": i * 0.5, "b": float("nan") if i == 7 else -i})
    print("compressed line " * 100)
    rid = finished(run)
    assert api.series(rid, "a")["y"] == [i * 0.5 for i in range(2000)]
    assert api.series(rid, "b")["y"][7] == "NaN"
    assert api.logs(rid, q="compressed")


def test_token_is_sent_as_bearer(fake_server, monkeypatch):
    fake = fake_server("ok")
    monkeypatch.setenv("LOUPE_TOKEN", "lp_secret123")
    run = loupe.init(server=fake.url)
    run.log({"x": 1})
    run.finish()
    assert fake.headers and all(h.get("Authorization") == "Bearer lp_secret123" for h in fake.headers)
    run = loupe.init(server=fake.url, token="explicit")
    run.finish()
    assert fake.headers[-1]["Authorization"] == "Bearer explicit"


def test_git_commit_and_command_are_recorded(server, api, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(git + ["init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-q", "--allow-empty", "-m", "init"], cwd=repo, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (repo / "train.py").write_text(
        "import loupe\nrun = loupe.init(server=%r)\nprint('RUNID', run.id)\nrun.finish()\n" % server.url)
    p = subprocess.run([sys.executable, "train.py", "--lr", "0.1"], cwd=repo, capture_output=True, text=True,
                       env=sdk_env(), timeout=60)
    rid = p.stdout.split("RUNID", 1)[1].split()[0]
    r = api.run(rid)
    assert r["git_commit"] == sha
    assert r["command"] == "train.py --lr 0.1"


def test_second_init_finishes_the_first(server, api):
    first = loupe.init(server=server.url)
    second = loupe.init(server=server.url)
    assert loupe.run is second and first.status == "finished"
    second.finish()
    assert api.run(first.id)["status"] == "finished"


def test_resume_true_takes_the_last_run_here(server, api):
    run = loupe.init(server=server.url)
    run.log({"x": 1.0})
    run.finish()
    again = loupe.init(resume=True, server=server.url, resume_step=1)
    assert again.id == run.id
    again.log({"x": 2.0})
    again.finish()
    assert api.series(run.id, "x")["y"] == [1.0, 2.0]


@pytest.mark.parametrize("code,status,exit_code", [(0, "finished", 0), (None, "finished", 0), (4, "failed", 4)])
def test_sys_exit_inside_the_context_manager(server, api, code, status, exit_code):
    with pytest.raises(SystemExit):
        with loupe.init(server=server.url) as run:
            raise SystemExit(code)
    r = api.run(run.id)
    assert (r["status"], r["exit_code"]) == (status, exit_code)
