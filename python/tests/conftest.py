"""Fixtures: the real ``loupe serve`` binary on a free port with a fresh data
directory, a small client for its API, and a fake server for the failure
modes a real one should not have."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import List, Optional, Sequence

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYTHON_DIR)

# The SDK under test is the one in this checkout, installed or not.
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)


def loupe_bin() -> str:
    path = os.environ.get("LOUPE_BIN") or os.path.join(REPO, "target", "release", "loupe")
    if not os.path.isfile(path):
        pytest.fail(
            "the loupe server binary is missing at %s: build it with `cargo build --release -p loupe` "
            "(or point LOUPE_BIN at one)" % path,
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``loupe serve`` in a subprocess; stop and start it again on the same
    port and data directory."""

    def __init__(self, data_dir: str, port: Optional[int] = None, args: Sequence[str] = ()):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = list(args)
        self.proc: Optional[subprocess.Popen] = None
        self.url = "http://127.0.0.1:%d" % self.port
        # More `loupe serve` arguments (a test's own settings).
        self.extra_args: List[str] = []

    def start(self) -> "Server":
        deadline = time.monotonic() + 20
        last = ""
        while time.monotonic() < deadline:
            self.proc = subprocess.Popen(
                [loupe_bin(), "serve", "--addr", "127.0.0.1:%d" % self.port, "--data", self.data_dir]
                + self.args
                + self.extra_args,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            line = self.proc.stdout.readline().decode()
            if "listening on http://" in line:
                addr = line.split("listening on http://", 1)[1].strip()
                assert addr.endswith(":%d" % self.port), line
                # Keep the pipes drained so the server never blocks on them.
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()
                threading.Thread(target=self.proc.stderr.read, daemon=True).start()
                return self
            last = line + self.proc.stderr.read().decode(errors="replace")
            self.proc.wait()
            time.sleep(0.2)  # the port may still be held by the previous process
        raise RuntimeError("loupe serve did not start: %s" % last)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Api:
    """Reads through the public HTTP API."""

    def __init__(self, url: str):
        self.url = url

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path: str):
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body

    def run(self, run_id: str) -> dict:
        return self.get("/api/v1/runs/%s" % run_id)

    def run_status(self, run_id: str) -> int:
        return self.request("GET", "/api/v1/runs/%s" % run_id)[0]

    def series(self, run_id: str, name: str) -> dict:
        """Every raw point of a series: {"step", "y", "time_ns"}."""
        out = {"step": [], "y": [], "time_ns": []}
        cursor = None
        while True:
            q = {"name": name, "limit": 100000}
            if cursor:
                q["cursor"] = cursor
            page = self.get("/api/v1/runs/%s/series/data?%s" % (run_id, urllib.parse.urlencode(q)))
            for k in out:
                out[k].extend(page[k])
            cursor = page.get("next_cursor")
            if not cursor:
                return out

    def series_names(self, run_id: str) -> List[str]:
        # The listing comes a page at a time: follow next_cursor.
        names: List[str] = []
        q = {"limit": 10000}
        while True:
            page = self.get("/api/v1/runs/%s/series?%s" % (run_id, urllib.parse.urlencode(q)))
            names.extend(s["name"] for s in page["series"])
            if not page.get("next_cursor"):
                return sorted(names)
            q["cursor"] = page["next_cursor"]

    def logs(self, run_id: str, q: Optional[str] = None, **params) -> List[dict]:
        out: List[dict] = []
        cursor = None
        while True:
            p = dict(params)
            p["limit"] = 1000
            if q is not None:
                p["q"] = q
            if cursor:
                p["cursor"] = cursor
            page = self.get("/api/v1/runs/%s/logs?%s" % (run_id, urllib.parse.urlencode(p)))
            out.extend(page["records"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One real server for the tests that do not stop it."""
    s = Server(str(tmp_path_factory.mktemp("loupe-data"))).start()
    yield s
    s.stop()


@pytest.fixture
def own_server(tmp_path):
    """A real server this test may stop and start again."""
    s = Server(str(tmp_path / "loupe-data"))
    yield s
    s.kill()


@pytest.fixture
def api(server):
    return Api(server.url)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Run directories under the test's tmp dir; no run left behind."""
    monkeypatch.setenv("LOUPE_DIR", str(tmp_path / "runs"))
    for var in ("LOUPE_SERVER", "LOUPE_TOKEN", "LOUPE_MODE", "LOUPE_RUN_ID", "LOUPE_PROJECT", "LOUPE_GROUP",
                "RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "SLURM_PROCID", "SLURM_NTASKS",
                "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOUPE_FINISH_TIMEOUT", "10")
    yield
    import loupe

    if loupe.run is not None:
        loupe.finish()


# --- a fake server for failure modes ---------------------------------------------


class FakeServer:
    """An HTTP server that answers as told: "ok" (200 and records the
    request), "500", "hang" (never answers), "garbage" (bytes that are not
    HTTP), "garbage200" (200 with a body that is not JSON), "reject" (400
    for bodies containing b"poison", 200 otherwise)."""

    def __init__(self, mode: str = "ok"):
        self.mode = mode
        self.requests: List[tuple] = []
        self.headers: List[dict] = []
        self.release = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                mode = fake.mode
                if mode == "hang":
                    fake.release.wait(30)
                    self.close_connection = True
                    return
                if mode == "garbage":
                    self.wfile.write(b"\x00\xff\xfeNOT HTTP AT ALL\r\n\r\n")
                    self.close_connection = True
                    return
                if mode == "500":
                    self._answer(500, b'{"error":{"code":"internal","message":"boom"}}')
                    return
                if mode == "garbage200":
                    self._answer(200, b"\x89PNG not json")
                    return
                if mode == "reject" and b"poison" in body:
                    self._answer(400, b'{"error":{"code":"invalid_batch","message":"poison"}}')
                    return
                fake.requests.append((self.command, self.path, body))
                fake.headers.append(dict(self.headers.items()))
                self._answer(200, b'{"accepted":1}')

            def _answer(self, status, data):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _handle

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_server():
    servers = []

    def make(mode="ok"):
        s = FakeServer(mode)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
