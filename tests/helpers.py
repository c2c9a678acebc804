"""Test helpers shared by the simulator and daemon tests."""

from __future__ import annotations

import threading

from gangd.core.events import PortEvent
from gangd.sim import SimHub


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
