"""What a new user meets first: the run's UI link (printed at init and
finish), failures recorded the way `loupe run` records them, and the W&B
calls scripts make, against the real server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import urllib.request

import pytest

import loupe

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(code: str, server, *args: str, env_extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env["LOUPE_SERVER"] = server.url
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env=env)


def run_id_of(stderr: str) -> str:
    line = next(x for x in stderr.splitlines() if x.startswith("loupe: run ") and " started: " in x)
    return line.split()[2]


def test_run_url_is_the_ui_page_printed_at_init_and_finish(server, api):
    p = run_script("""
        import loupe
        run = loupe.init(project="first-hour")
        print("URL", run.url, run.get_url())
        run.log({"loss": 1.0})
        loupe.finish()
    """, server)
    assert p.returncode == 0, p.stderr
    rid = run_id_of(p.stderr)
    url = "%s/r/%s" % (server.url, rid)
    assert ("URL %s %s" % (url, url)) in p.stdout
    assert "loupe: run %s started: %s\n" % (rid, url) in p.stderr
    assert p.stderr.endswith("loupe: run %s finished: %s\n" % (rid, url)), p.stderr
    # The server answers the UI page (the browser test follows it further).
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200 and b"<html" in r.read().lower()
    assert api.run(rid)["project"] == "first-hour"


def test_silent_settings_print_nothing(server):
    p = run_script("""
        import loupe as wandb
        run = wandb.init(settings=wandb.Settings(silent=True, console="off"))
        wandb.finish()
    """, server)
    assert p.returncode == 0 and "loupe: run" not in p.stderr, p.stderr


UNCAUGHT = """
    import sys, loupe

    class OutOfMemoryError(RuntimeError):
        pass
    OutOfMemoryError.__module__ = "torch"

    run = loupe.init()
    run.log({"loss": 2.0})
    sys.stderr.write("\\r 10%|#         | 1/10 [00:00<00:01,  9.1it/s]")
    sys.stderr.write("\\r 20%|##        | 2/10 [00:00<00:01,  9.3it/s]\\n")
    print("allocating the activations", file=sys.stderr)
    raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
"""


def test_an_uncaught_exception_writes_the_failure_loupe_run_writes(server, api):
    p = run_script(UNCAUGHT, server)
    assert p.returncode == 1
    rid = run_id_of(p.stderr)
    assert "loupe: run %s failed: %s/r/%s" % (rid, server.url, rid) in p.stderr
    r = api.run(rid)
    assert r["status"] == "failed" and r["exit_code"] == 1, r
    f = r["failure"]
    assert f["exception_type"] == "torch.OutOfMemoryError", f
    assert f["message"] == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert f["signal"] is None
    assert f["traceback"].startswith("Traceback (most recent call last):")
    assert f["traceback"].endswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    # The stderr tail holds what the program wrote, without progress bars.
    assert "allocating the activations" in f["stderr_tail"], f
    assert not any("it/s" in x for x in f["stderr_tail"]), f


def test_an_exception_inside_with_init_writes_the_failure(server, api):
    with pytest.raises(ZeroDivisionError):
        with loupe.init(server=server.url) as run:
            run.log({"x": 1})
            1 / 0  # noqa: B018
    r = api.run(run.id)
    assert r["status"] == "failed" and r["exit_code"] == 1
    f = r["failure"]
    assert f["exception_type"] == "ZeroDivisionError" and f["message"] == "division by zero", f
    assert "1 / 0" in f["traceback"] and f["traceback"].endswith("ZeroDivisionError: division by zero")
    assert isinstance(f["stderr_tail"], list)


def test_sys_exit_with_a_code_is_a_failure_and_a_clean_run_has_none(server, api):
    # Inside `with`: outside it Python does not tell exit hooks the code.
    p = run_script("import loupe, sys\nwith loupe.init():\n    sys.exit(3)\n", server)
    assert p.returncode == 3
    r = api.run(run_id_of(p.stderr))
    assert r["status"] == "failed" and r["exit_code"] == 3
    assert r["failure"]["exception_type"] == "SystemExit", r
    ok = loupe.init(server=server.url)
    ok.finish()
    assert api.run(ok.id)["failure"] is None


def test_metrics_without_step_have_steps(server, api):
    run = loupe.init(server=server.url)
    for i in range(3):
        run.log({"loss": 1.0 / (i + 1), "epoch": i * 0.5})
    run.log({"eval/acc": 0.5})
    run.finish()
    assert api.series(run.id, "loss")["step"] == [0, 1, 2]
    assert api.series(run.id, "epoch")["step"] == [0, 1, 2]
    assert api.series(run.id, "eval/acc")["step"] == [3]


def test_common_wandb_calls_work(server, api, tmp_path):
    import loupe as wandb

    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights")
    run = wandb.init(server=server.url, settings=wandb.Settings(silent=True, start_method="thread"),
                     project="compat", config={"lr": 0.1})
    assert run.get_url() == run.url == "%s/r/%s" % (server.url, run.id)
    assert run.get_project_url() == "%s/p/compat" % server.url
    wandb.define_metric("val/*", step_metric="epoch", summary="max")
    run.define_metric("loss", summary="min")
    art = wandb.Artifact("resnet", type="model", metadata={"epochs": 3})
    art.add_file(str(ckpt))
    art.add_reference("s3://bucket/data")
    with art.new_file("notes.txt") as f:
        f.write("hello")
    assert run.log_artifact(art) is art
    assert wandb.use_artifact("dataset:v1").name == "dataset:v1"
    run.log_model(str(ckpt), name="final")
    run.mark_preempting()
    wandb.log({"loss": 0.5})
    rid = run.id
    wandb.finish()
    events = [r for r in api.logs(rid) if r["stream"] == "app"]
    arts = [(r["attributes"]["artifact"], r["attributes"]["type"], r["attributes"]["action"]) for r in events
            if r.get("attributes", {}).get("event") == "artifact"]
    assert arts == [("resnet", "model", "logged"), ("dataset:v1", "artifact", "used"), ("final", "model", "logged")]
    assert str(ckpt) in events[0]["text"] and "s3://bucket/data" in events[0]["text"]
    assert any(r.get("attributes", {}).get("event") == "preempting" for r in events)
    assert api.series(rid, "loss")["step"] == [0]


def test_no_resource_warning_at_exit(server):
    p = run_script("""
        import loupe
        run = loupe.init()
        for i in range(50):
            run.log({"loss": float(i)})
        print("hello")
    """, server, "-X", "dev", "-W", "always::ResourceWarning")
    assert p.returncode == 0, p.stderr
    assert "ResourceWarning" not in p.stderr, p.stderr
