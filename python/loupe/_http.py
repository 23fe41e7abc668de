"""A small HTTP client over http.client: one keep-alive connection, bounded
timeouts, and every failure turned into an exception of one kind."""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from typing import Dict, Optional, Tuple

from . import __version__

USER_AGENT = "loupe-python/" + __version__


class TransportError(Exception):
    """The request did not get an HTTP answer: refused, reset, timed out, or
    the answer was not HTTP."""


class Client:
    def __init__(self, server: str, token: Optional[str] = None, timeout: float = 10.0):
        u = urllib.parse.urlsplit(server)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("server %r: expected http://host:port or https://host:port" % server)
        self.server = server
        self._https = u.scheme == "https"
        self._host = u.hostname
        self._port = u.port or (443 if self._https else 80)
        self._prefix = u.path.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._conn: Optional[http.client.HTTPConnection] = None
        self._used = False

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            c: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            c = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        self._used = False
        return c

    def close(self) -> None:
        c, self._conn = self._conn, None
        if c is not None:
            try:
                c.close()
            except Exception:
                pass

    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[int, bytes]:
        """(status, body) of the answer; TransportError when there is none."""
        h = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self._token:
            h["Authorization"] = "Bearer " + self._token
        if headers:
            h.update(headers)
        # A keep-alive connection the server closed while idle fails on first
        # use: that one failure is retried once on a fresh connection.
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = self._connect()
            reused = self._used
            try:
                self._conn.request(method, self._prefix + path, body=body, headers=h)
                resp = self._conn.getresponse()
                data = resp.read()
                self._used = True
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if reused and attempt == 0:
                    continue
                raise TransportError("%s %s: %s" % (method, path, e or type(e).__name__)) from None
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.close()
                kind = "timed out" if isinstance(e, socket.timeout) else (str(e) or type(e).__name__)
                raise TransportError("%s %s: %s" % (method, path, kind)) from None
        raise TransportError("%s %s: failed" % (method, path))  # pragma: no cover
