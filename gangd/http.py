"""The status endpoint: `/metrics` (Prometheus text format), `/status` (JSON), `/healthz`.

A deliberately small HTTP/1.1 server on trio streams: GET only, one request per connection, a
deadline on every read, so a slow or hostile client costs one task and nothing else. Loopback by
default; the address comes from the config (`[http] address`) or `--metrics-address HOST:PORT`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import structlog
import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import __version__
from .metrics import Metrics

log = structlog.get_logger("gangd.http")

DEFAULT_ADDRESS = "127.0.0.1:9740"
REQUEST_DEADLINE_S = 5.0
MAX_REQUEST_BYTES = 8192


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class StatusServer:
    def __init__(self, metrics: Metrics, status: Callable[[], dict], address: str = DEFAULT_ADDRESS) -> None:
        self.metrics = metrics
        self.status = status
        self.host, self.port = parse_address(address)
        self.started = time.monotonic()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        self.port = listeners[0].socket.getsockname()[1]  # the real one when 0 was asked for
        log.info("status endpoint listening", address=f"{self.host}:{self.port}")
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.abc.Stream) -> None:
        async with stream:
            with trio.move_on_after(REQUEST_DEADLINE_S):
                request = await self._read_request(stream)
                if request is None:
                    return
                status, content_type, body = self._respond(request)
                head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                        "Connection: close\r\n\r\n").encode()  # fmt: skip
                try:
                    await stream.send_all(head + body)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    @staticmethod
    async def _read_request(stream: trio.abc.Stream) -> tuple[str, str] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = await stream.receive_some(4096)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not chunk or len(data) > MAX_REQUEST_BYTES:
                return None
            data += chunk
        parts = data.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3:
            return None
        return parts[0], parts[1].split("?", 1)[0]

    def _respond(self, request: tuple[str, str]) -> tuple[str, str, bytes]:
        method, path = request
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        if path == "/status":
            body = {"version": __version__, "uptime_s": round(time.monotonic() - self.started, 1), **self.status()}
            return "200 OK", "application/json", json.dumps(body, indent=1).encode()
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        return "404 Not Found", "text/plain", b"not found\n"
