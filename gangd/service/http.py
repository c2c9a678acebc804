"""gangd's HTTP endpoint: the station page, its live stream, the control API, /status, /metrics.

The server is hypercorn's trio worker (one task per connection on gangd's own trio loop) running
the Starlette app of `gangd/web`. gangd binds the listening socket itself before anything starts,
so a taken address or a bad port is one clear line and exit status 2, and the real port is known
when 0 asked for any free one. Loopback by default (`[http] address`, `--http-address HOST:PORT`).

Limits, so that a slow or hostile client costs its own connection and nothing else: the request
line and headers must arrive within REQUEST_DEADLINE_S and fit MAX_REQUEST_BYTES (hypercorn's idle
timer and h11's incomplete-event limit); a request body is at most MAX_REQUEST_BYTES (413); every
response but the live stream must be produced within REQUEST_DEADLINE_S (503).
"""

from __future__ import annotations

import errno
import logging
import socket

import structlog
import trio

from gangd.config.address import parse_address

log = structlog.get_logger("gangd.service.http")

REQUEST_DEADLINE_S = 5.0
MAX_REQUEST_BYTES = 8192


class AddressError(ValueError):
    """The HTTP address cannot be used; the message names the address and what to change."""


def bind(address: str, setting: str) -> socket.socket:
    """A listening TCP socket on `address`, or AddressError naming it and `setting` (what to change)."""
    try:
        host, port = parse_address(address)
    except ValueError as exc:
        raise AddressError(f"{exc}: change {setting}") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise AddressError(f"{address}: unknown host {host!r} ({exc.strerror}): change {setting}") from None
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Like trio's listeners: rebind at once after a restart (never SO_REUSEPORT: two gangds
        # on one port must collide).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressError(
                f"{address} is already in use (another gangd, or another program): stop it or change {setting}"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise AddressError(f"{address}: {host} is not an address of this machine: change {setting}") from None
        if exc.errno == errno.EACCES:
            raise AddressError(
                f"{address}: port {port} needs privileges gangd does not have: change {setting}"
            ) from None
        raise AddressError(f"{address}: cannot listen: {exc.strerror}: change {setting}") from None
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class HttpServer:
    """Serves an ASGI app on an already bound socket, started with `nursery.start(server.run)`."""

    def __init__(self, app, sock: socket.socket) -> None:
        self.app = app
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = url_of(sock)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        from hypercorn.config import Config, Sockets
        from hypercorn.trio.run import worker_serve
        from hypercorn.utils import wrap_app

        config = Config()
        config.keep_alive_timeout = REQUEST_DEADLINE_S  # an idle connection, or headers too slow to come
        config.h11_max_incomplete_size = MAX_REQUEST_BYTES  # request line and headers
        config.graceful_timeout = 1.0
        config.include_server_header = False
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")  # through gangd's log pipeline, warnings only
        sockets = Sockets(secure_sockets=[], insecure_sockets=[self.sock], quic_sockets=[])
        log.info("station page", url=self.url)
        await worker_serve(
            wrap_app(self.app, config.wsgi_max_body_size, "asgi"), config, sockets=sockets, task_status=task_status
        )
