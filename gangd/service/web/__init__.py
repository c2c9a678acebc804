"""The station page and gangd's HTTP API, as a small Starlette app served by hypercorn on trio.

    GET  /                              the station page (its assets under /static: no other host)
    GET  /api/view                      the page's model: header, layout, tiles, last records (JSON)
    GET  /api/events                    the same, live: Server-Sent Events `station` and `records`
    POST /api/ports/{port}/{action}     disable | enable | acknowledge (a suspect flag); needs the token
    GET  /status  /metrics  /healthz    as before: per-port JSON, Prometheus text, liveness

Control is off (403) unless `[http] control_token` is set; a control request carries the token in
the `X-Gangd-Token` header (or `Authorization: Bearer`). A custom header cannot be sent cross-site
without a CORS preflight, which gangd never grants, and a request whose Origin is another site is
refused as well: a page open on the line's LAN cannot be driven by a stranger or another web page.
"""

from __future__ import annotations

import hmac
import json
import time
from importlib import resources
from urllib.parse import urlsplit

import structlog
import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from gangd import __version__
from gangd.service import http as limits  # REQUEST_DEADLINE_S and MAX_REQUEST_BYTES, read at each request
from gangd.service.metrics import Metrics
from gangd.service.view import StationView
from gangd.station.station import UnknownPort

log = structlog.get_logger("gangd.service.http")

MAX_STREAMS = 32  # live streams at once; one more gets 503
MIN_INTERVAL_S = 0.25  # changes are coalesced: at most 4 updates a second per stream
HEARTBEAT_S = 15.0
ACTIONS = ("disable", "enable", "acknowledge")
STATIC = {
    "station.css": "text/css; charset=utf-8",
    "station.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class Limits:
    """ASGI middleware: security headers on every response; a deadline on every response but the
    live stream (503 when it passes); headers (431) and bodies (413) up to MAX_REQUEST_BYTES."""

    def __init__(self, app, streams: tuple[str, ...]) -> None:
        self.app = app
        self.streams = streams

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def guarded_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        most = limits.MAX_REQUEST_BYTES
        # h11 bounds headers that arrive in pieces; headers that come whole are measured here.
        if len(scope.get("raw_path") or b"") + sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > most:
            await self._fail(guarded_send, 431, f"request line and headers larger than {most} bytes")
            return
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > most:
            await self._fail(guarded_send, 413, f"request body larger than {most} bytes")
            return
        deadline = float("inf") if scope["path"] in self.streams else limits.REQUEST_DEADLINE_S
        with trio.move_on_after(deadline) as timer:
            # The body is read here, bounded, before the app sees it (gangd's bodies are tiny).
            body, more = b"", scope.get("method") in ("POST", "PUT", "PATCH", "DELETE")
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > most:
                    await self._fail(guarded_send, 413, f"request body larger than {most} bytes")
                    return
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await self.app(scope, replay, guarded_send)
        if timer.cancelled_caught and not started:
            log.warning("request took too long", path=scope["path"], deadline_s=deadline)
            await self._fail(guarded_send, 503, f"no answer within {deadline:g} s")

    @staticmethod
    async def _fail(send, status: int, text: str) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": text.encode() + b"\n"})


def create_app(view: StationView, metrics: Metrics, control_token: str | None = None) -> Limits:
    station = view.station
    started = time.monotonic()
    page = _asset("station.html")
    assets = {name: _asset(name) for name in STATIC}
    streams = 0

    async def index(request: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return PlainTextResponse("not found\n", status_code=404)
        return Response(assets[name], media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    async def favicon(request: Request) -> Response:
        return Response(assets["favicon.svg"], media_type=STATIC["favicon.svg"])

    async def api_view(request: Request) -> Response:
        return JSONResponse({**view.snapshot(), "records": view.record_rows()})

    async def events(request: Request) -> Response:
        nonlocal streams
        if streams >= MAX_STREAMS:
            return PlainTextResponse(f"more than {MAX_STREAMS} live streams\n", status_code=503)

        async def stream():
            nonlocal streams
            streams += 1
            try:
                yield "retry: 2000\n\n"
                seen, records_seen = -1, -1
                while True:
                    seen = station.changes.version
                    yield _event("station", view.snapshot())
                    if view.records_version != records_seen:
                        records_seen = view.records_version
                        yield _event("records", view.record_rows())
                    with trio.move_on_after(HEARTBEAT_S) as idle:
                        await station.changes.wait(seen)
                    if idle.cancelled_caught:
                        yield ": still here\n\n"
                    await trio.sleep(MIN_INTERVAL_S)  # let a burst of changes settle into one update
            finally:
                streams -= 1

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    async def control(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        refusal = _refuse(request, control_token)
        if refusal:
            log.warning(
                "control request refused",
                port=name,
                action=action,
                reason=refusal,
                client=request.client.host if request.client else None,
            )
            return JSONResponse({"error": refusal}, status_code=403)
        await request.body()  # bounded by Limits
        if action not in ACTIONS:
            return JSONResponse({"error": f"unknown action {action!r} (one of {', '.join(ACTIONS)})"}, status_code=404)
        try:
            if action == "acknowledge":
                port = station.acknowledge(name)
            else:
                port = station.set_enabled(name, action == "enable")
        except UnknownPort:
            return JSONResponse({"error": f"no port {name!r} on this station"}, status_code=404)
        return JSONResponse({"ok": True, "port": view.tile(port)})

    async def status(request: Request) -> Response:
        body = {"version": __version__, "uptime_s": round(time.monotonic() - started, 1), **station.status()}
        return Response(json.dumps(body, indent=1), media_type="application/json")

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/static/{name}", static),
            Route("/favicon.ico", favicon),
            Route("/api/view", api_view),
            Route("/api/events", events),
            Route("/api/ports/{name}/{action}", control, methods=["POST"]),
            Route("/status", status),
            Route("/metrics", prometheus),
            Route("/healthz", healthz),
        ]
    )
    return Limits(app, streams=("/api/events",))


def _event(kind: str, data) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _refuse(request: Request, token: str | None) -> str | None:
    """Why a control request is refused, or None."""
    if not token:
        return "the station is read-only: control needs [http] control_token in gangd's configuration"
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host"):
        return f"cross-site request from {origin} refused"
    supplied = request.headers.get("x-gangd-token")
    if supplied is None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        supplied = credentials if scheme.lower() == "bearer" else None
    if not supplied:
        return "control needs the token (X-Gangd-Token header)"
    if not hmac.compare_digest(supplied.encode(), token.encode()):
        return "wrong control token"
    return None
