"""Boards from the simulated hub, delivered like udev's: current boards first, then live events."""

from __future__ import annotations

from collections.abc import Callable

import trio

from gangd.core.events import ADD, PortEvent
from gangd.sim.hub import SimHub


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


class SimPortPower:
    """The simulated hub's ports can always be power-cycled."""

    def __init__(self, hub) -> None:
        self.hub = hub

    def available(self, port: str) -> bool:
        return port in self.hub.ports

    async def power_cycle(self, port: str) -> None:
        await trio.to_thread.run_sync(self.hub.port(port).power_cycle)
