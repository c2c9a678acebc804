"""Boards from the simulated hub, delivered like udev's: current boards first, then live events."""

from __future__ import annotations

from collections.abc import Callable

import trio

from ..sim.hub import SimHub
from .events import ADD, PortEvent


class SimHubSource:
    def __init__(self, hub: SimHub) -> None:
        self.hub = hub

    async def run(self, emit: Callable[[PortEvent], None], *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        token = trio.lowlevel.current_trio_token()

        def from_port_thread(event: PortEvent) -> None:
            try:
                token.run_sync_soon(emit, event)
            except trio.RunFinishedError:
                pass  # gangd has stopped; the hub outlives it briefly

        # Subscribe before the snapshot, so nothing falls between; a board seen by both is
        # dropped by its port as a duplicate.
        self.hub.subscribe(from_port_thread)
        latest: dict[str, PortEvent] = {}
        for event in list(self.hub.events):
            latest[event.port] = event
        for event in latest.values():
            if event.action == ADD:
                emit(event)
        task_status.started()
        await trio.sleep_forever()
