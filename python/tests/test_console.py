"""Console capture: lines reach the server, the streams keep working."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

import loupe
from loupe._console import Tee, clean_line, level_of


def test_printed_lines_are_searchable(server, api):
    before_out, before_err = sys.stdout, sys.stderr
    run = loupe.init(server=server.url)
    assert sys.stdout is not before_out and sys.stderr is not before_err
    print("epoch 1 accuracy 0.71 zebra-marker")
    print("partial line ", end="")
    print("completed quokka-marker")
    sys.stderr.write("RuntimeWarning: something odd happened\n")
    sys.stderr.write("ERROR: cuda out of memory walrus-marker\n")
    print("no newline at the end narwhal-marker", end="")
    run.finish()
    assert sys.stdout is before_out and sys.stderr is before_err

    def one(q):
        recs = api.logs(run.id, q=q)
        assert len(recs) == 1, (q, recs)
        return recs[0]

    r = one("zebra-marker")
    assert r["stream"] == "stdout" and r["text"] == "epoch 1 accuracy 0.71 zebra-marker" and r["level"] == "info"
    assert one("quokka-marker")["text"] == "partial line completed quokka-marker"
    w = one("walrus-marker")
    assert w["stream"] == "stderr" and w["level"] == "error"
    assert one("RuntimeWarning")["level"] == "warning"
    assert one("narwhal-marker")["text"] == "no newline at the end narwhal-marker"


def test_tee_keeps_the_stream_api():
    lines = []
    buf = io.StringIO()
    tee = Tee(buf, "stdout", lines.extend)
    assert tee.write("hello\nwor") == len("hello\nwor")
    tee.write("ld\r\n")
    tee.writelines(["a\n", "b\n"])
    tee.flush()
    print("via print", file=tee, flush=True)
    assert buf.getvalue() == "hello\nworld\r\na\nb\nvia print\n"
    assert [x[3] for x in lines] == ["hello", "world", "a", "b", "via print"]
    # Attributes come from the original stream.
    assert tee.isatty() is False
    assert tee.getvalue() == buf.getvalue()
    real = Tee(sys.__stdout__, "stdout", lines.extend)
    assert real.fileno() == sys.__stdout__.fileno()
    assert real.encoding == sys.__stdout__.encoding
    assert real.errors == sys.__stdout__.errors
    assert real.buffer is sys.__stdout__.buffer


def test_progress_bars_and_escape_codes():
    assert clean_line("\r 10%|#   |\r 50%|##  |\r100%|####|") == "100%|####|"
    assert clean_line("\x1b[31mred\x1b[0m text") == "red text"
    assert clean_line("windows line\r") == "windows line"
    lines = []
    buf = io.StringIO()
    tee = Tee(buf, "stderr", lines.extend)
    for i in range(1000):  # a progress bar redrawn in place: the buffer stays small
        tee.write("\r%d%%" % (i % 100))
    assert len(tee._loupe_partial) < 10
    tee.write("\n")
    assert [x[3] for x in lines] == ["99%"]
    assert level_of("Traceback (most recent call last):") == "error"
    assert level_of("ValueError: bad") == "error"
    assert level_of("loss 0.1") == "info"


def test_capture_off():
    before = sys.stdout
    run = loupe.init(mode="offline", capture_console=False)
    assert sys.stdout is before
    run.finish()


def test_uncaught_exception_in_a_script_fails_the_run(server, api, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import loupe
        run = loupe.init(server=%r, dir=%r)
        print("RUNID", run.id, flush=True)
        print("starting training pelican-marker")
        loupe.log({"loss": 1.0})
        raise RuntimeError("exploded at step 1")
    """ % (server.url, str(tmp_path / "run"))))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                       env=_env_with_sdk())
    assert p.returncode == 1
    assert "exploded at step 1" in p.stderr  # the traceback still reaches the terminal
    rid = p.stdout.split("RUNID", 1)[1].split()[0]
    r = api.run(rid)
    assert r["status"] == "failed" and r["exit_code"] == 1
    assert api.logs(rid, q="pelican-marker")
    app = [x for x in api.logs(rid, q="exploded") if x["stream"] == "app"]
    assert app and app[0]["attributes"]["exception"] == "RuntimeError"


def test_script_without_finish_is_finished_at_exit(server, api, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import loupe
        run = loupe.init(server=%r, dir=%r)
        print("RUNID", run.id, flush=True)
        for i in range(100):
            loupe.log({"loss": 1.0 / (i + 1)})
    """ % (server.url, str(tmp_path / "run"))))
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                       env=_env_with_sdk())
    assert p.returncode == 0, p.stderr
    rid = p.stdout.split("RUNID", 1)[1].split()[0]
    assert api.run(rid)["status"] == "finished"
    assert len(api.series(rid, "loss")["y"]) == 100


def _env_with_sdk():
    import os

    env = dict(os.environ)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    return env
