"""sd_notify over a real unix datagram socket: READY=1 only after coldplug, STATUS lines, WATCHDOG=1
at half the configured interval, and no pings while the trio loop is blocked."""

from __future__ import annotations

import os
import socket
import time

import trio

from gangd.service.notify import Notifier

from ..support import GANGD, Process


def messages(sock: socket.socket, until: float) -> list[tuple[float, dict[str, str]]]:
    out = []
    while time.monotonic() < until:
        sock.settimeout(max(0.01, until - time.monotonic()))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        fields = dict(line.split("=", 1) for line in data.decode().splitlines())
        out.append((time.monotonic(), fields))
    return out


def test_ready_after_coldplug_status_and_watchdog(tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}
    daemon = Process(
        [
            GANGD,
            "run",
            "--simulate",
            "2",
            "--boards",
            "2",
            "--time-scale",
            "0",
            "--state-dir",
            str(tmp_path),
            "--metrics-address",
            "127.0.0.1:0",
        ],
        env=env,
    )
    try:
        # The pings are counted from READY on: how long start-up takes depends on the machine's load.
        seen: list[tuple[float, dict[str, str]]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(fields.get("READY") == "1" for _, fields in seen):
            seen += messages(sock, min(deadline, time.monotonic() + 1))
        seen += messages(sock, time.monotonic() + 3)
    finally:
        daemon.stop()
        seen += messages(sock, time.monotonic() + 0.5)
    ready = [fields for _, fields in seen if fields.get("READY") == "1"]
    assert ready, seen
    # READY carries the station's state at that instant: both boards were already seen (coldplug).
    assert "2 ports, 2 boards present" in ready[0]["STATUS"]
    statuses = [fields["STATUS"] for _, fields in seen if "STATUS" in fields]
    assert any("2 programmed" in status for status in statuses)
    assert any(fields.get("STOPPING") == "1" for _, fields in seen)
    pings = [at for at, fields in seen if fields.get("WATCHDOG") == "1"]
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert len(pings) >= 20, pings
    assert 0.07 < sorted(gaps)[len(gaps) // 2] < 0.15  # half of WATCHDOG_USEC = 0.1 s


async def test_pings_stop_while_the_loop_is_blocked(tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    received: list[float] = []

    async def collect():
        while True:
            await trio.lowlevel.wait_readable(sock)
            sock.recv(100)
            received.append(time.monotonic())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(notifier.watchdog)
        nursery.start_soon(collect)
        await trio.sleep(0.5)
        blocked_at = time.monotonic()
        time.sleep(0.8)  # the trio loop is wedged: nothing on it runs
        released_at = time.monotonic()
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    notifier.close()
    # Collected late (the collector was wedged too), so judge by what the socket got in between:
    # pings happen every 0.05 s; over 0.8 s of blocking at most the one already queued arrives.
    before = [t for t in received if t < blocked_at]
    after = [t for t in received if t > released_at + 0.01]
    assert len(before) >= 6 and len(after) >= 6
    assert len(received) - len(before) - len(after) <= 2
