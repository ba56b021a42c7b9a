"""An HTTP proxy in front of moto's S3 server that answers chosen requests with S3 errors or not at all.

Both S3 clients of the product (s3fs for the zones, DuckDB's httpfs for Parquet) talk to it as their
endpoint, so their real error handling meets real HTTP faults. Rules are counted, not timed: "the next
2 PUTs under raw/ get 503 SlowDown" is deterministic; a ``hang`` holds the request without answering
until the client's own timeout gives up (``MYOMAP_S3_TIMEOUT_S``) and the proxy is told to let go.
"""
from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass
class Rule:
    method: str
    path_part: str
    status: int | None  # None: hang (no answer)
    code: str
    times: int | None  # None: every matching request


class FaultProxy:
    """``FaultProxy(upstream)``: ``.url`` to use as the S3 endpoint; ``fail(...)``, ``hang(...)``, ``clear()``."""

    def __init__(self, upstream: str):
        self.upstream = urlparse(upstream)
        self.rules: list[Rule] = []
        self.injected: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _handle(self):
                body = self._body()
                rule = proxy._match(self.command, self.path)
                if rule is not None and rule.status is None:
                    proxy.release.wait(60)
                    self.close_connection = True
                    return
                if rule is not None:
                    xml = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{rule.code}</Code><Message>"
                           f"injected {rule.code}</Message><RequestId>proxy</RequestId></Error>").encode()
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(xml)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(xml)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in _HOP and k.lower() != "content-length":
                            conn.putheader(k, v)
                    conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status, resp.reason)
                    for k, v in resp.getheaders():
                        if k.lower() not in _HOP and k.lower() != "content-length":
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data) if self.command != "HEAD" else
                                                          resp.getheader("Content-Length") or 0))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _match(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for rule in self.rules:
                if rule.method == method and rule.path_part in path and (rule.times is None or rule.times > 0):
                    if rule.times is not None:
                        rule.times -= 1
                    self.injected.append((method, path, rule.code))
                    return rule
        return None

    def fail(self, method: str, path_part: str, *, status: int = 503, code: str = "SlowDown",
             times: int | None = None) -> None:
        """Answer the next ``times`` (all, if None) matching requests with ``status``/``code``."""
        with self.lock:
            self.rules.append(Rule(method, path_part, status, code, times))

    def hang(self, method: str, path_part: str, *, times: int = 1) -> None:
        """Do not answer the next ``times`` matching requests (until :meth:`clear`)."""
        with self.lock:
            self.rules.append(Rule(method, path_part, None, "Timeout", times))

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
        self.release.set()

    def close(self) -> None:
        self.clear()
        self.server.shutdown()
        self.server.server_close()
