"""gangd's HTTP endpoint in this process, on real loopback sockets: the control API's token and
cross-site rules, the live stream following the station, and the limits a slow or hostile client
runs into (request deadline, header and body sizes)."""

from __future__ import annotations

import json

import pytest
import trio

from gangd.service import http as gangd_http
from gangd.service.metrics import Metrics
from gangd.service.view import StationView
from gangd.service.web import Limits, create_app
from gangd.sim import BoardFactory, SimHub, TimingModel
from gangd.sim.source import SimHubSource
from gangd.station.station import Station

TOKEN = "station-token-0123456789"


async def request(port: int, raw: bytes, timeout: float = 10) -> bytes:
    """Sends raw bytes, returns everything the server sent until it closed the connection."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        data = b""
        with trio.fail_after(timeout):
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                data += chunk
    return data


def post(path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def body_of(response: bytes) -> dict:
    return json.loads(response.split(b"\r\n\r\n", 1)[1])


@pytest.fixture
async def served(rt1020, recipe, nursery):
    """start(token=...) -> (station, port): a station on a 2-port simulated hub, served over HTTP."""
    hubs = []

    async def start(token: str | None = TOKEN, plug: bool = True):
        hub = SimHub(2, seed=3)
        hubs.append(hub)
        if plug:
            factory = BoardFactory(rt1020, TimingModel(time_scale=0), seed=5)
            for path in hub.ports:
                hub.plug(path, factory())
        metrics = Metrics()
        station = Station(rt1020, recipe, {"1-1.1": "A1", "1-1.2": "A2"}, metrics=metrics)
        sock = gangd_http.bind("127.0.0.1:0", "--http-address")
        server = gangd_http.HttpServer(create_app(StationView(station, control=bool(token)), metrics, token), sock)
        await nursery.start(server.run)
        await nursery.start(station.run, SimHubSource(hub).run)
        return station, server.port

    yield start
    for hub in hubs:
        hub.close()


async def test_control_needs_the_token_and_the_same_origin(served):
    station, port = await served(plug=False)
    refused = [
        post("/api/ports/A1/disable"),
        post("/api/ports/A1/disable", {"X-Gangd-Token": "wrong-token-wrong-token"}),
        post("/api/ports/A1/disable", {"Authorization": "Basic " + TOKEN}),
        post("/api/ports/A1/disable", {"X-Gangd-Token": TOKEN, "Origin": "http://elsewhere.example"}),
    ]
    for raw in refused:
        response = await request(port, raw)
        assert status_of(response) == 403, response
    assert not station.ports["1-1.1"].disabled

    response = await request(
        port, post("/api/ports/A1/disable", {"X-Gangd-Token": TOKEN, "Origin": "http://127.0.0.1"})
    )
    assert status_of(response) == 200
    assert body_of(response)["port"]["state"] == "disabled" and station.ports["1-1.1"].disabled
    response = await request(port, post("/api/ports/1-1.1/enable", {"Authorization": f"Bearer {TOKEN}"}))
    assert status_of(response) == 200 and not station.ports["1-1.1"].disabled
    response = await request(port, post("/api/ports/A2/acknowledge", {"X-Gangd-Token": TOKEN}))
    assert status_of(response) == 200
    assert status_of(await request(port, post("/api/ports/Z9/disable", {"X-Gangd-Token": TOKEN}))) == 404
    assert status_of(await request(port, post("/api/ports/A1/explode", {"X-Gangd-Token": TOKEN}))) == 404
    get = b"GET /api/ports/A1/disable HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert status_of(await request(port, get)) == 405  # a link or an <img> cannot drive a port


async def test_read_only_without_a_configured_token(served):
    station, port = await served(token=None, plug=False)
    response = await request(port, post("/api/ports/A1/disable", {"X-Gangd-Token": TOKEN}))
    assert status_of(response) == 403
    assert "read-only" in body_of(response)["error"]
    assert not station.ports["1-1.1"].disabled


async def test_live_stream_follows_the_station(served):
    station, port = await served(plug=False)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        buffer = b""

        async def next_station_event() -> dict:
            nonlocal buffer
            while True:
                head, sep, rest = buffer.partition(b"\n\n")
                if sep:
                    buffer = rest
                    lines = head.decode().splitlines()
                    if "event: station" in lines:
                        return json.loads(next(line for line in lines if line.startswith("data: "))[6:])
                    continue
                buffer += await stream.receive_some(65536)

        with trio.fail_after(5):
            first = await next_station_event()
            assert [p["state"] for p in first["ports"]] == ["idle", "idle"]
            station.set_enabled("A2", False)
            while True:  # the next update (within the coalescing interval) shows it
                update = await next_station_event()
                if update["ports"][1]["state"] == "disabled":
                    break
        assert update["ports"][1]["instruction"] == "A2 is disabled: a board there is left alone until it is enabled"


async def test_static_assets_and_security_headers(served):
    station, port = await served(plug=False)
    page = await request(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(page) == 200 and b"<main>" in page
    assert b"content-security-policy: default-src 'none'; script-src 'self'" in page.lower()
    for name in ("station.js", "station.css", "favicon.svg"):
        response = await request(port, f"GET /static/{name} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert status_of(response) == 200, name
    assert (
        status_of(await request(port, b"GET /static/../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        == 404
    )
    status = await request(port, b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert body_of(status)["ports"][0]["label"] == "A1"
    metrics = await request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b'gangd_port_state{gangd_port_state="idle",port="A1"} 1.0' in metrics


async def test_limits(served, monkeypatch):
    monkeypatch.setattr(gangd_http, "REQUEST_DEADLINE_S", 0.5)
    station, port = await served(plug=False)
    # Headers that never finish: the connection is closed at the deadline, nothing else waits.
    with trio.fail_after(5):
        slow = await request(port, b"GET /status HTTP/1.1\r\nHost: x\r\n")
    assert slow == b"" or status_of(slow) >= 400
    # Headers larger than the limit.
    huge = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10_000 + b"\r\nConnection: close\r\n\r\n"
    response = await request(port, huge)
    assert status_of(response) == 431
    slow_huge = await request(port, huge[:9000])  # in pieces: h11 stops reading
    assert slow_huge == b"" or status_of(slow_huge) in (400, 431)
    # A body larger than the limit, announced or chunked.
    big = post("/api/ports/A1/disable", {"X-Gangd-Token": TOKEN}, b"x" * 9000)
    assert status_of(await request(port, big)) == 413
    chunked = (
        b"POST /api/ports/A1/disable HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
        b"X-Gangd-Token: "
        + TOKEN.encode()
        + b"\r\n\r\n"
        + b"".join(b"1000\r\n" + b"x" * 4096 + b"\r\n" for _ in range(3))
        + b"0\r\n\r\n"
    )
    assert status_of(await request(port, chunked)) == 413
    assert not station.ports["1-1.1"].disabled
    # The server still answers.
    ok = await request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(ok) == 200


async def test_a_response_past_its_deadline_is_503(monkeypatch):
    monkeypatch.setattr(gangd_http, "REQUEST_DEADLINE_S", 0.05)

    async def slow_app(scope, receive, send):
        await trio.sleep(10)

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    with trio.fail_after(2):
        await Limits(slow_app, streams=())({"type": "http", "path": "/x", "headers": []}, receive, send)
    assert sent[0]["status"] == 503
    assert b"no answer within 0.05 s" in sent[1]["body"]
