"""Each host controller enumerates one device at a time, as Linux does.

drivers/usb/core/hub.c: `hub_port_connect()` takes the host controller's `hcd->address0_mutex`
around `hub_port_init()` (the port resets, the first descriptor read and SET_ADDRESS), and
`usb_reset_and_verify_device()` takes it too; the USB 2 and USB 3 root hubs of one xHCI share it
(`usb_create_shared_hcd()`), two controllers have two. So on one controller a device that comes on
the bus (plugged, power-cycled, a ROM that jumped to its flashloader, a board rebooting after its
reset) waits for every device ahead of it, then spends `TimingModel.address0_s()` under the mutex.

The queue is kept as time, not as a lock: a device asks for its turn when it is ready (its own boot
done), gets the window that starts when the controller is free, and the controller is busy until
the window ends. Boards of one hub run as greenlets on one thread (loop.py) and hidraw ports as
threads, and a window is the same for both. Our choice: a board unplugged while it waits keeps its
window (the kernel's time for a device that went away is short but not nothing; this is simpler).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

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


class EnumerationQueue:
    """The address0 windows of every host controller of a hub."""

    def __init__(self) -> None:
        self._free_at: dict[str, float] = {}  # per controller, when its mutex is free
        self._lock = threading.Lock()
        self.windows: deque[Window] = deque(maxlen=_KEPT)

    def turn(self, controller: str, port: str, duration_s: float) -> Window:
        """The next window of `duration_s` on `controller` for a device ready now; the caller waits
        until its end before the device shows on the bus."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._free_at.get(controller, now))
            window = Window(controller, port, start, start + duration_s)
            self._free_at[controller] = window.end
            if duration_s > 0:
                self.windows.append(window)
            return window

    def backlog_s(self, controller: str) -> float:
        """How long a device ready now would wait for its turn on `controller`."""
        with self._lock:
            return max(0.0, self._free_at.get(controller, 0.0) - time.monotonic())
