"""One physical USB port of the station: its events, in order, and "wait for replug".

A board is known by the port it sits in. The port's events arrive in one queue that whoever is
in charge reads: the port task while the port is idle, the board's job while it runs. Waiting for a
replug (fwupd's remove-delay) means reading that queue until an add of the expected stage shows up
on this port, under a deadline.
"""

from __future__ import annotations

import math

import trio

from .errors import ReplugTimeout
from .family import FamilyInfo, UsbIds
from .hotplug.events import ADD, PortEvent

ROM = "rom"
FLASHLOADER = "flashloader"


def stage_of(family: FamilyInfo, event: PortEvent) -> str | None:
    ids = UsbIds(event.vid, event.pid)
    if family.is_flashloader(ids):
        return FLASHLOADER
    if family.is_rom(ids):
        return ROM
    return None


class Port:
    def __init__(self, path: str, label: str | None, family: FamilyInfo) -> None:
        self.path = path
        self.label = label or path
        self.family = family
        self._send, self._receive = trio.open_memory_channel[PortEvent](math.inf)
        self.attached: PortEvent | None = None  # the board as of the last event consumed
        self.state = "idle"
        self.step: str | None = None
        self.suspect = False  # its boards fail here and pass on other ports
        self.progress = 0.0  # the running job's weighted progress, 0..1

    def deliver(self, event: PortEvent) -> None:
        """Called by the station, in event order, from the trio thread."""
        self._send.send_nowait(event)

    async def next_event(self) -> PortEvent:
        while True:
            event = await self._receive.receive()
            if event.action == ADD and self.attached == event:
                continue  # the same enumeration reported twice (coldplug racing the monitor)
            self.attached = event if event.action == ADD else None
            return event

    async def wait_for_stage(self, stage: str, timeout_s: float, step: str) -> PortEvent:
        """The next add of `stage` on this port; ReplugTimeout naming port, step and deadline."""
        with trio.move_on_after(timeout_s):
            while True:
                event = await self.next_event()
                if event.action == ADD and stage_of(self.family, event) == stage:
                    return event
        raise ReplugTimeout(
            self.path, step, f"the {stage} did not appear on the port within {timeout_s:g} s", kind="replug-timeout"
        )

    async def wait_until_removed(self, timeout_s: float) -> bool:
        with trio.move_on_after(timeout_s):
            while self.attached is not None:
                await self.next_event()
            return True
        return False
