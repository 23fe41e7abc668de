"""Log batches are stored once even when they are sent more than once: each
carries an ``Idempotency-Key`` made with the batch and kept with it in the
spool, so a retry after a lost answer, a replay of the spool by the SDK and
one by ``loupe sync`` all send the same key, and the real server stores the
lines once."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import threading

import loupe
from loupe._sender import next_request
from loupe._spool import Spool, format_line, parse_line, parse_record

from conftest import Api
from test_resilience import spool_entries, sync


def test_spool_lines_keep_the_key():
    line = format_line("logs", 7, b'{"records":[]}', "abc123:4")
    assert line == b'{"kind":"logs","seq":7,"key":"abc123:4","body":{"records":[]}}\n'
    assert parse_record(line) == (7, "logs", b'{"records":[]}', "abc123:4")
    assert parse_line(line) == (7, "logs", b'{"records":[]}')
    # Lines written without a key (older SDKs) read as before.
    assert parse_record(b'{"kind":"logs","seq":2,"body":{"records":[]}}\n') == (2, "logs", b'{"records":[]}', None)
    # Written by hand, with spaces: the slow path finds the key too, and
    # drops one the server would refuse.
    assert parse_record(b'{"kind": "logs", "seq": 3, "key": "k:1", "body": {"records": []}}\n')[3] == "k:1"
    assert parse_record(b'{"kind": "logs", "seq": 3, "key": "bad key", "body": {"records": []}}\n')[3] is None


def test_keyed_log_batches_are_never_merged(tmp_path):
    s = Spool(str(tmp_path))
    s.append("metrics", b'{"series":[1]}')
    s.append("metrics", b'{"series":[2]}')
    s.append("logs", b'{"records":[1]}', "n:1")
    s.append("logs", b'{"records":[2]}', "n:2")
    s.append("logs", b'{"records":[3]}')
    s.append("logs", b'{"records":[4]}')
    entries = s.unacked()
    assert next_request(entries, 0) == (2, "metrics", b'{"series":[1,2]}', None)
    assert next_request(entries, 2) == (3, "logs", b'{"records":[1]}', "n:1")
    assert next_request(entries, 3) == (4, "logs", b'{"records":[2]}', "n:2")
    assert next_request(entries, 4) == (6, "logs", b'{"records":[3,4]}', None)


def test_spooled_log_batch_replayed_twice_is_stored_once(server, api):
    # An offline run: everything goes to the spool, log batches with their keys.
    run = loupe.init(mode="offline", capture_console=False)
    run.log({"loss": 1.0})
    run.log_text("heron-marker one")
    run.log_text("heron-marker two")
    run.finish()
    logs = [e for e in spool_entries(run.dir) if e["kind"] == "logs"]
    assert logs and all(":" in e["key"] for e in logs)

    out = sync(run.dir, server.url)
    assert out.returncode == 0, out.stderr
    assert len(api.logs(run.id, q="heron-marker")) == 2

    # The server stored the batch but its answer was lost, so the marker
    # says nothing was acknowledged: the next sync sends it all again.
    os.unlink(os.path.join(run.dir, "acked"))
    out = sync(run.dir, server.url)
    assert out.returncode == 0, out.stderr
    assert len(api.logs(run.id, q="heron-marker")) == 2
    assert len(api.series(run.id, "loss")["y"]) == 1

    # And once more by the SDK itself, which uploads the spool when the run
    # is resumed.
    os.unlink(os.path.join(run.dir, "acked"))
    again = loupe.init(resume=run.id, dir=run.dir, server=server.url, capture_console=False)
    again.log_text("heron-marker three")
    again.finish()
    assert len(api.logs(run.id, q="heron-marker")) == 3


class LosingProxy:
    """Forwards requests to the real server, but for the first log batch
    drops the server's answer (the connection is closed without a reply):
    the server has the lines and the SDK cannot know it."""

    def __init__(self, target: str):
        self.keys = []  # Idempotency-Key of every log batch that went through
        self.dropped = 0
        host, port = target.split("://", 1)[1].rsplit(":", 1)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "content-encoding", "idempotency-key", "authorization")}
                c = http.client.HTTPConnection(host, int(port), timeout=10)
                try:
                    c.request(self.command, self.path, body=body, headers=headers)
                    resp = c.getresponse()
                    data = resp.read()
                finally:
                    c.close()
                if self.command == "POST" and self.path.endswith("/logs"):
                    proxy.keys.append(self.headers.get("Idempotency-Key"))
                    if proxy.dropped == 0 and resp.status == 200:
                        proxy.dropped += 1
                        self.close_connection = True
                        return
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type") or "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _forward

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_lost_answer_does_not_store_the_lines_twice(server, api, monkeypatch):
    monkeypatch.setenv("LOUPE_BACKOFF_CAP", "0.5")
    proxy = LosingProxy(server.url)
    try:
        run = loupe.init(server=proxy.url, capture_console=False)
        run.log_text("ibis-marker")
        run.log({"loss": 1.0})
        assert run.flush(10)
        run.finish()
    finally:
        proxy.close()
    assert proxy.dropped == 1
    # Sent at least twice (the first answer was lost), always under one key.
    assert len(proxy.keys) >= 2 and len(set(proxy.keys)) == 1 and proxy.keys[0]
    assert len(api.logs(run.id, q="ibis-marker")) == 1


def test_halves_of_a_refused_batch_have_keys_of_their_own(fake_server):
    fake = fake_server("reject")
    run = loupe.init(server=fake.url, capture_console=False)
    run.log_text("fine one")
    run.log_text("poison")
    run.log_text("fine two")
    run.finish()
    keyed = [(h.get("Idempotency-Key"), body) for (m, path, body), h in zip(fake.requests, fake.headers)
             if path.endswith("/logs")]
    keys = [k for k, _ in keyed]
    assert keys and all(keys), keys
    base = keys[0].split(".")[0]
    # The stored halves are the batch's key plus .0 / .1 per cut.
    assert all(k.startswith(base + ".") for k in keys), keys
    stored = [r["text"] for _, body in keyed for r in json.loads(body)["records"]]
    assert stored == ["fine one", "fine two"]
