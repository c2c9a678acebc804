"""Test helpers shared by the simulator and daemon tests."""

from __future__ import annotations

import random
import threading

from gangd.core.events import PortEvent
from gangd.sim import SimHub
from gangd.sim.images import build_flashloader_image


class EventWaiter:
    """Collects a hub's events and waits, with a deadline, for the next one that matches."""

    def __init__(self, hub: SimHub) -> None:
        self._cond = threading.Condition()
        self._events: list[PortEvent] = []
        self._taken: dict[str, int] = {}  # per port: index just past the last event returned
        hub.subscribe(self._on_event)

    def _on_event(self, event: PortEvent) -> None:
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    def next(self, port: str, action: str = "add", pid: int | None = None, timeout: float = 10) -> PortEvent:
        """The first matching event on `port` after the last one returned for that port.

        Fails the test after `timeout` seconds. Ports are followed independently: their events
        interleave in any order.
        """

        def find() -> PortEvent | None:
            for index in range(self._taken.get(port, 0), len(self._events)):
                event = self._events[index]
                if event.port == port and event.action == action and pid in (None, event.pid):
                    self._taken[port] = index + 1
                    return event
            return None

        with self._cond:
            found = self._cond.wait_for(find, timeout)
        if found is None:
            raise AssertionError(f"no {action} event on {port} (pid={pid}) within {timeout} s; saw {self._events}")
        return found

    @property
    def events(self) -> list[PortEvent]:
        with self._cond:
            return list(self._events)


def _flashloader_with(ivt_words: dict[int, int], length: int | None = None) -> bytes:
    """The simulator's flashloader image with IVT words replaced (word 0 is the entry point, 3 the
    boot data pointer), or its boot data's length replaced."""
    image, jump = build_flashloader_image()
    data = bytearray(image)
    ivt = jump - 0x2000_0000
    for word, value in ivt_words.items():
        data[ivt + 4 + 4 * word : ivt + 8 + 4 * word] = value.to_bytes(4, "little")
    if length is not None:
        data[ivt + 0x20 + 4 : ivt + 0x20 + 8] = length.to_bytes(4, "little")
    return bytes(data)


# Flashloader files the ROM refuses to jump to, loaded at 0x20000000 and jumped to at 0x20000400:
# `gangd check-config` refuses them (tests/config) and so does the simulated ROM (tests/sim).
BAD_FLASHLOADERS = [
    # (what, the file's bytes, the reason's fragment, whether the ROM itself refuses the jump)
    ("random bytes", random.Random(20).randbytes(0x8440), "no image vector table at 0x20000400", True),
    ("entry point outside its image", _flashloader_with({0: 0x3000_0001}), "entry point 0x30000001 is outside", True),
    # The ROM checks the entry against the boot data only: it would jump into whatever RAM holds
    # past the file. check-config knows the file, and refuses.
    (
        "entry point past the end of the file",
        _flashloader_with({0: 0x2002_0001}, length=0x40000),
        "entry point 0x20020001 is outside the loaded flashloader (0x20000000..+33840)",
        False,
    ),
    (
        "boot data outside the file",
        _flashloader_with({3: 0x2010_0000}),
        "boot data pointer 0x20100000 lies outside",
        False,
    ),
]
