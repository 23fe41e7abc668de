"""Observing never hurts the observed: the server away, killed, failing,
hanging or talking nonsense costs the training loop nothing and loses no
data; the spool is uploaded exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import loupe
from loupe._spool import Spool, parse_line

from conftest import Api, free_port


def sync(run_dir, server_url):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.pathsep + env.get(
        "PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "loupe", "sync", str(run_dir), "--server", server_url],
                          capture_output=True, text=True, timeout=60, env=env)


def spool_entries(run_dir):
    with open(os.path.join(run_dir, "spool.jsonl"), "rb") as f:
        return [json.loads(line) for line in f]


def test_server_down_mid_run_loses_nothing(own_server, monkeypatch):
    monkeypatch.setenv("LOUPE_BACKOFF_CAP", "0.5")
    server = own_server.start()
    api = Api(server.url)
    run = loupe.init(server=server.url)
    for i in range(300):
        run.log({"loss": float(i), "acc": i / 1000})
        if i % 50 == 0:
            print("progress line %d" % i)
    assert run.flush(10)

    server.kill()  # gone without a word
    slowest = 0.0
    down_since = time.monotonic()
    for i in range(300, 600):
        t = time.perf_counter()
        run.log({"loss": float(i), "acc": i / 1000})
        slowest = max(slowest, time.perf_counter() - t)
        if i % 50 == 0:
            print("progress line %d" % i)
        # The outage lasts 30 s, as a restarting server's might: the
        # collector tries, fails, backs off and spools meanwhile.
        time.sleep(max(0.0, down_since + 30.0 * (i - 299) / 300 - time.monotonic()))
    assert time.monotonic() - down_since >= 30.0
    assert run._pipeline.spool_mode
    assert os.path.getsize(os.path.join(run.dir, "spool.jsonl")) > 0
    assert slowest < 0.25  # scheduler noise, never a network wait

    server.start()  # same port, same data
    for i in range(600, 900):
        run.log({"loss": float(i), "acc": i / 1000})
        if i % 50 == 0:
            print("progress line %d" % i)
    run.finish()

    got = api.series(run.id, "loss")
    assert got["step"] == list(range(900))
    assert got["y"] == [float(i) for i in range(900)]
    lines = [r["text"] for r in api.logs(run.id, q="progress")]
    assert sorted(lines) == sorted("progress line %d" % i for i in range(0, 900, 50))  # each exactly once
    assert api.run(run.id)["status"] == "finished"


TRAIN = """
import sys, time, loupe
run = loupe.init(server=sys.argv[1], dir=sys.argv[2], config={"lr": 0.1})
for i in range(int(sys.argv[3])):
    loupe.log({"loss": 1.0 / (i + 1), "i": i})
    if i % 100 == 0:
        print("training step %d otter-marker" % i)
run.flush(float(sys.argv[4]))
print("READY", run.id, flush=True)
time.sleep(600)
"""


def start_training(tmp_path, server_url, steps, flush_timeout=10.0):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.pathsep + env.get(
        "PYTHONPATH", "")
    env["LOUPE_HTTP_TIMEOUT"] = "1"
    run_dir = tmp_path / "run"
    p = subprocess.Popen([sys.executable, str(script), server_url, str(run_dir), str(steps), str(flush_timeout)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen = []
    for line in p.stdout:
        if line.startswith("READY"):
            return p, line.split()[1], run_dir
        seen.append(line)
    p.kill()
    raise AssertionError("the training script ended early: %s%s" % ("".join(seen), p.stderr.read()))


def test_sigkill_with_server_away_then_sync_exactly_once(tmp_path, own_server):
    # The server is not there while the job runs: everything goes to the spool.
    p, rid, run_dir = start_training(tmp_path, own_server.url, 1000, flush_timeout=2.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    kinds = [e["kind"] for e in spool_entries(run_dir)]
    assert kinds[0] == "run" and "metrics" in kinds and "logs" in kinds

    server = own_server.start()
    api = Api(server.url)
    assert api.run_status(rid) == 404
    out = sync(run_dir, server.url)
    assert out.returncode == 0, out.stderr
    got = api.series(rid, "loss")
    assert got["step"] == list(range(1000))
    assert got["y"] == [1.0 / (i + 1) for i in range(1000)]
    assert len(api.logs(rid, q="otter-marker")) == 10
    r = api.run(rid)
    assert r["config"] == {"lr": 0.1}
    assert r["status"] == "crashed"  # it never said how it ended

    again = sync(run_dir, server.url)
    assert again.returncode == 0 and "nothing to upload" in again.stdout
    assert len(api.logs(rid, q="otter-marker")) == 10
    assert len(api.series(rid, "loss")["y"]) == 1000


def test_sigkill_after_server_died_then_resume_uploads_the_spool(tmp_path, own_server, monkeypatch):
    server = own_server.start()
    api = Api(server.url)
    p, rid, run_dir = start_training(tmp_path, server.url, 200)
    assert api.series(rid, "loss")["step"] == list(range(200))  # sent live
    server.kill()
    # The job keeps logging while the server is away, then dies.
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    server.start()
    assert not Spool(str(run_dir)).pending()  # flushed live: nothing to sync
    assert "nothing to upload" in sync(run_dir, server.url).stdout

    # A job that spooled some, then died: resuming it uploads the spool first.
    spool = Spool(str(run_dir))
    body = b'{"series":[{"name":"loss","step":[200,201],"time":[1700000000,1700000001],"value":[7.0,8.0]}]}'
    spool.append("metrics", body)
    spool.append("logs", b'{"records":[{"time":1700000000,"stream":"stdout","text":"spooled beaver-marker"}]}')
    spool.close()
    run = loupe.init(resume=rid, resume_step=202, server=server.url, dir=str(run_dir))
    run.log({"loss": 9.0})
    run.finish()
    got = api.series(rid, "loss")
    assert got["step"] == list(range(203))
    assert got["y"][-3:] == [7.0, 8.0, 9.0]
    assert len(api.logs(rid, q="beaver-marker")) == 1
    assert "nothing to upload" in sync(run_dir, server.url).stdout
    assert len(api.logs(rid, q="beaver-marker")) == 1


@pytest.mark.parametrize("mode", ["500", "hang", "garbage", "garbage200"])
def test_log_never_raises_nor_blocks_when_the_server_misbehaves(mode, fake_server, server, monkeypatch):
    monkeypatch.setenv("LOUPE_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("LOUPE_FINISH_TIMEOUT", "2")
    monkeypatch.setenv("LOUPE_BACKOFF_CAP", "0.5")
    fake = fake_server(mode)
    run = loupe.init(server=fake.url)
    slowest = 0.0
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < 1.5:  # long enough for several failed sends
        t = time.perf_counter()
        run.log({"loss": float(n), "acc": 0.5})
        slowest = max(slowest, time.perf_counter() - t)
        n += 1
        if n % 1000 == 0:
            print("line %d" % n)
            time.sleep(0.01)
    t = time.perf_counter()
    run.finish()
    finish_s = time.perf_counter() - t
    assert slowest < 0.25, slowest  # a wait on the network would be >= 1 s
    assert finish_s < 5, finish_s
    if mode == "garbage200":
        return  # the server said 200: as far as anyone can tell, it has the data
    # Nothing was lost: it is all in the spool, and a real server takes it.
    api = Api(server.url)
    out = sync(run.dir, server.url)
    assert out.returncode == 0, out.stderr
    got = api.series(run.id, "loss")
    assert got["step"] == list(range(n))
    assert api.run(run.id)["status"] == "finished"


def test_memory_bound_spills_to_the_spool(fake_server, monkeypatch):
    monkeypatch.setenv("LOUPE_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("LOUPE_MAX_BUFFER_MB", "0.01")
    monkeypatch.setenv("LOUPE_FINISH_TIMEOUT", "0.5")
    fake = fake_server("hang")
    run = loupe.init(server=fake.url)
    for i in range(20000):
        run.log({"x": float(i)})
        if i % 5000 == 0:
            time.sleep(0.6)
    run.finish()
    steps = []
    for e in spool_entries(run.dir):
        if e["kind"] == "metrics":
            for s in e["body"]["series"]:
                steps.extend(s["step"])
    assert sorted(steps) == list(range(20000))


def test_refused_batches_are_isolated_and_set_aside(fake_server):
    fake = fake_server("reject")
    run = loupe.init(server=fake.url)
    for i in range(100):
        run.log({"fine": float(i)})
    print("a poison line")
    print("a harmless line")
    run.finish()
    stored = []
    for method, path, body in fake.requests:
        if path.endswith("/metrics"):
            for s in json.loads(body)["series"]:
                stored.extend(s["step"])
    assert sorted(stored) == list(range(100))
    texts = [r["text"] for m, p, b in fake.requests if p.endswith("/logs") for r in json.loads(b)["records"]]
    assert "a harmless line" in texts and "a poison line" not in texts
    with open(os.path.join(run.dir, "rejected.jsonl")) as f:
        rejected = [json.loads(line) for line in f]
    assert [r["body"]["records"][0]["text"] for r in rejected] == ["a poison line"]
    assert not Spool(run.dir).pending()


def test_offline_then_sync_once(server, api):
    run = loupe.init(mode="offline", server=server.url, config={"opt": "sgd"}, tags=["offline"])
    for i in range(500):
        run.log({"loss": float(i)})
    print("offline heron-marker")
    run.summary["best"] = 1.5
    run.finish(exit_code=2)
    assert api.run_status(run.id) == 404  # nothing was sent
    kinds = [e["kind"] for e in spool_entries(run.dir)]
    assert kinds[0] == "run" and kinds[-1] == "patch"

    out = sync(run.dir, server.url)
    assert out.returncode == 0, out.stderr
    assert api.series(run.id, "loss")["step"] == list(range(500))
    r = api.run(run.id)
    assert r["config"] == {"opt": "sgd"} and r["tags"] == ["offline"]
    assert r["status"] == "failed" and r["exit_code"] == 2
    assert r["summary"]["best"]["last"] == 1.5
    assert len(api.logs(run.id, q="heron-marker")) == 1
    assert "nothing to upload" in sync(run.dir, server.url).stdout
    assert len(api.logs(run.id, q="heron-marker")) == 1


def test_sync_a_directory_of_runs_and_the_cli_entry(server, api, tmp_path):
    ids = []
    for _ in range(2):
        run = loupe.init(mode="offline", capture_console=False)
        run.log({"x": 1.0})
        run.finish()
        ids.append(run.id)
    root = os.environ["LOUPE_DIR"]
    from loupe.sync import main

    assert main([root, "--server", server.url]) == 0
    for rid in ids:
        assert api.series(rid, "x")["y"] == [1.0]
    assert main([str(tmp_path / "nothing-here"), "--server", server.url]) == 1


def test_sync_refuses_a_live_run(fake_server):
    fake = fake_server("ok")
    run = loupe.init(mode="offline", server=fake.url)
    out = sync(run.dir, fake.url)
    assert out.returncode == 1 and "live process" in out.stderr
    run.finish()


def test_sync_against_an_unreachable_server_keeps_the_spool(tmp_path):
    run = loupe.init(mode="offline", capture_console=False)
    run.log({"x": 1.0})
    run.finish()
    from loupe.sync import SyncError, sync_dir

    os.environ["LOUPE_HTTP_TIMEOUT"] = "0.5"
    try:
        with pytest.raises(SyncError):
            sync_dir(run.dir, "http://127.0.0.1:%d" % free_port(), attempts=2)
    finally:
        os.environ.pop("LOUPE_HTTP_TIMEOUT", None)
    assert Spool(run.dir).pending()


def test_spool_format_and_torn_tail(tmp_path):
    d = str(tmp_path / "s")
    s = Spool(d)
    assert s.append("metrics", b'{"series":[]}') == 1
    assert s.append("logs", b'{"records":[{"text":"x"}]}') == 2
    s.close()
    with open(os.path.join(d, "spool.jsonl"), "ab") as f:
        f.write(b'{"kind":"metrics","seq":3,"body":{"ser')  # torn by a crash
    s = Spool(d)
    assert (s.last_seq, s.acked_seq) == (2, 0)
    entries = s.unacked()
    assert [(e[0], e[1]) for e in entries] == [(1, "metrics"), (2, "logs")]
    s.ack(1, entries[0][3])
    assert json.load(open(os.path.join(d, "acked"))) == {"seq": 1, "offset": entries[0][3]}
    assert s.append("patch", b'{"status":"finished"}') == 3
    s.close()
    with open(os.path.join(d, "spool.jsonl"), "rb") as f:
        lines = f.read().split(b"\n")
    assert lines[-1] == b""  # the torn line is gone, every line whole
    parsed = [json.loads(line) for line in lines[:-1]]
    assert [(p["kind"], p["seq"]) for p in parsed] == [("metrics", 1), ("logs", 2), ("patch", 3)]
    assert parse_line(lines[2] + b"\n") == (3, "patch", b'{"status":"finished"}')
    s = Spool(d)
    assert [e[0] for e in s.unacked()] == [2, 3]
    # A marker whose offset does not fit is found again by seq.
    with open(os.path.join(d, "acked"), "w") as f:
        f.write('{"seq": 2, "offset": 5}')
    assert [e[0] for e in Spool(d).unacked()] == [3]


def test_finish_is_bounded_when_the_server_hangs(fake_server, monkeypatch):
    monkeypatch.setenv("LOUPE_HTTP_TIMEOUT", "30")
    monkeypatch.setenv("LOUPE_FINISH_TIMEOUT", "1")
    fake = fake_server("hang")
    run = loupe.init(server=fake.url)
    run.log({"x": 1.0})
    t = time.perf_counter()
    run.finish()
    assert time.perf_counter() - t < 4
    kinds = [e["kind"] for e in spool_entries(run.dir)]
    assert kinds[0] == "run" and "metrics" in kinds and kinds[-1] == "patch"


def test_server_that_lost_the_run_gets_it_again(own_server, tmp_path):
    import shutil

    server = own_server.start()
    api = Api(server.url)
    run = loupe.init(server=server.url, config={"k": 1})
    run.log({"x": 1.0})
    assert run.flush(10)
    server.kill()
    shutil.rmtree(server.data_dir)  # a fresh, empty server on the same address
    server.start()
    assert api.run_status(run.id) == 404
    run.log({"x": 2.0})
    run.finish()
    assert api.series(run.id, "x")["y"] == [2.0]
    r = api.run(run.id)
    assert r["status"] == "finished" and r["config"] == {"k": 1}
