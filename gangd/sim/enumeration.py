"""Each host controller enumerates one device at a time, as Linux does.

drivers/usb/core/hub.c: `hub_port_connect()` takes the host controller's `hcd->address0_mutex`
around `hub_port_init()` (the port resets, the first descriptor read and SET_ADDRESS), and
`usb_reset_and_verify_device()` takes it too; the USB 2 and USB 3 root hubs of one xHCI share it
(`usb_create_shared_hcd()`), two controllers have two. So on one controller a device that comes on
the bus (plugged, power-cycled, a ROM that jumped to its flashloader, a board rebooting after its
reset) waits for every device ahead of it, then spends `TimingModel.address0_s()` under the mutex.

A device asks for its turn when it is ready (its own boot done) and waits first come, first
served; at its turn its window starts when the controller was freed (or when it asked, if the
controller was idle) and lasts `duration_s`; it shows on the bus at the window's end. A device
unplugged while it waits leaves the queue without taking time, and one unplugged inside its window
frees the controller at once: the kernel's reset of a port with nothing on it fails at once
(hub_port_reset() returns -ENOTCONN). Boards of one hub run as greenlets on one thread (loop.py),
hidraw ports as threads: the turn is a `Flag`, which wakes either.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from gangd.sim.loop import Flag, wait_event

# The windows kept for tests and views: enough for a few waves of a big station.
_KEPT = 4096


@dataclass(frozen=True)
class Window:
    """One enumeration under the controller's address0_mutex: from its first port reset to its
    address set (monotonic seconds)."""

    controller: str
    port: str
    start: float
    end: float


class _Ticket:
    __slots__ = ("port", "turn", "asked")

    def __init__(self, port: str) -> None:
        self.port = port
        self.turn = Flag()  # set when the ticket is first in its controller's queue (or unplugged)
        self.asked = time.monotonic()


class EnumerationQueue:
    """The enumeration queue of every host controller of a hub, and the windows it gave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[_Ticket]] = {}  # per controller, first the one enumerating
        self._free_at: dict[str, float] = {}  # per controller, when its last window ended
        self.windows: deque[Window] = deque(maxlen=_KEPT)

    def enumerate(self, controller: str, port: str, duration_s: float, unplugged: Flag) -> Window | None:
        """Wait for the device's turn on `controller`, then through its window; the window, or
        None when the board was unplugged first."""
        ticket = _Ticket(port)
        with self._lock:
            queue = self._queues.setdefault(controller, deque())
            queue.append(ticket)
            if len(queue) == 1:
                ticket.turn.set()
        wake = ticket.turn.set
        unplugged.add_waker(wake)  # an unplug ends the wait for the turn too
        try:
            if not unplugged.is_set():
                wait_event(ticket.turn)
            if unplugged.is_set():
                self._leave(controller, ticket, None)
                return None
            with self._lock:
                start = max(ticket.asked, self._free_at.get(controller, ticket.asked))
            window = Window(controller, port, start, start + duration_s)
            wait_event(unplugged, max(0.0, window.end - time.monotonic()))
            if unplugged.is_set():
                self._leave(controller, ticket, time.monotonic())
                return None
            self._leave(controller, ticket, window.end)
            if duration_s > 0:
                self.windows.append(window)
            return window
        finally:
            unplugged.remove_waker(wake)

    def _leave(self, controller: str, ticket: _Ticket, freed_at: float | None) -> None:
        """The ticket is done (its window over, `freed_at`) or withdrawn (None): the next one's turn."""
        with self._lock:
            queue = self._queues[controller]
            first = queue[0] is ticket
            queue.remove(ticket)
            if freed_at is not None:
                self._free_at[controller] = freed_at
            if first and queue:
                queue[0].turn.set()
