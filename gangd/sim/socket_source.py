"""Boards from a simulated hub in another process, over a unix stream socket of JSON lines.

Used where the simulator must outlive the daemon (the soak kills gangd with SIGKILL and restarts
it while the boards stay plugged in) and the hub must be driven from outside.

    hub → gangd   {"type": "event", ...PortEvent}       a hotplug event
                  {"type": "coldplug-done"}             the boards present at connect were sent
                  {"type": "power-cycled", "port": P}   the answer to a power-cycle request
    gangd → hub   {"type": "finished", "port": P, "result": R}   a board's job is over
                  {"type": "power-cycle", "port": P}
"""

from __future__ import annotations

import json
import math

import trio

from gangd.core.events import PortEvent


async def json_messages(stream):
    """(type, fields) for each JSON line on a trio receive stream, until it ends."""
    buffer = b""
    while chunk := await stream.receive_some(65536):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            message = json.loads(line)
            yield message.pop("type"), message


class SimSocketSource:
    def __init__(self, path: str) -> None:
        self.path = path
        self._outbox_send, self._outbox = trio.open_memory_channel[dict](math.inf)
        self._power_waiters: dict[str, trio.Event] = {}

    def finished(self, port: str, result: str) -> None:
        self._outbox_send.send_nowait({"type": "finished", "port": port, "result": result})

    async def run(self, emit, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        stream = await trio.open_unix_socket(self.path)
        async with stream, trio.open_nursery() as nursery:
            nursery.start_soon(self._writer, stream)
            started = False
            async for kind, message in json_messages(stream):
                if kind == "event":
                    emit(PortEvent(**message))
                elif kind == "coldplug-done" and not started:
                    started = True
                    task_status.started()
                elif kind == "power-cycled":
                    waiter = self._power_waiters.pop(message["port"], None)
                    if waiter is not None:
                        waiter.set()
            raise ConnectionError(f"{self.path}: the simulated hub went away")

    async def _writer(self, stream) -> None:
        async for message in self._outbox:
            await stream.send_all(json.dumps(message).encode() + b"\n")

    async def power_cycle(self, port: str, timeout_s: float = 30.0) -> None:
        done = self._power_waiters[port] = trio.Event()
        self._outbox_send.send_nowait({"type": "power-cycle", "port": port})
        with trio.move_on_after(timeout_s):  # every wait has a deadline; the replug wait follows
            await done.wait()
        self._power_waiters.pop(port, None)


class SimSocketPower:
    """Port power switching delegated to the hub process."""

    def __init__(self, source: SimSocketSource) -> None:
        self.source = source

    def available(self, port: str) -> bool:
        return True

    async def power_cycle(self, port: str) -> None:
        await self.source.power_cycle(port)
