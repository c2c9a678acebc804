"""systemd's notify protocol, spoken directly: datagrams of `KEY=value` lines to $NOTIFY_SOCKET.

READY=1 once the coldplug scan is done, STATUS= with the station's counts, WATCHDOG=1 from a task
on the trio loop itself (not a thread), so a wedged loop stops the pings and `WatchdogSec` lets
systemd kill and restart gangd. Without $NOTIFY_SOCKET every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time

import structlog
import trio

log = structlog.get_logger("gangd.service.notify")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address  # abstract namespace
        self.watchdog_s: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1_000_000
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, **fields: str) -> None:
        if self._sock is None:
            return
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(message.encode(), self.address)
        except OSError as exc:  # systemd gone or socket full: never take gangd down for it
            log.warning("sd_notify failed", error=str(exc))

    def ready(self, status: str) -> None:
        self.send(ready="1", status=status)

    def status(self, status: str) -> None:
        self.send(status=status)

    def stopping(self) -> None:
        self.send(stopping="1", status="stopping: finishing running jobs")

    def reloading(self) -> None:
        self.send(reloading="1", monotonic_usec=str(_monotonic_usec()))

    async def watchdog(self) -> None:
        """Ping at half the watchdog interval, from the trio loop."""
        if self.watchdog_s is None or self._sock is None:
            return
        while True:
            self.send(watchdog="1")
            await trio.sleep(self.watchdog_s / 2)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
