"""An HTTP proxy for `chaos`: put between the worker and the model server, it forwards every
request, or, while `failing` is set, answers 500 itself, as a server with a bug would. The
model server itself has no way to fail on purpose."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FaultProxy:
    def __init__(self, upstream: str, host: str, port: int) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=120)
        self.failing = threading.Event()
        self.failed = 0
        self.server = _Server((host, port), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()

    def answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> httpx.Response:
        if self.failing.is_set():
            self.failed += 1
            return httpx.Response(500, text="fault injected by the chaos proxy")
        try:
            return self.upstream.request(method, path, headers=headers, content=body)
        except httpx.TransportError as error:  # the server is down: say so as a gateway would
            return httpx.Response(502, text=f"upstream unreachable: {type(error).__name__}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A worker killed mid-request closes its end: nothing worth a traceback."""


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the worker's client expects

        def _relay(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            response = proxy.answer(self.command, self.path, headers, body)
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in HOP_BY_HOP | {"content-encoding"}:
                    self.send_header(key, value)
            self.send_header("content-length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        def do_GET(self) -> None:
            self._relay()

        def do_POST(self) -> None:
            self._relay()

        def log_message(self, *_: Any) -> None:  # one line per request would drown the run
            pass

    return Handler
