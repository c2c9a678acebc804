"""The one event type every board source produces, real (udev) or simulated (the sim hub)."""

from __future__ import annotations

from dataclasses import dataclass

ADD = "add"
REMOVE = "remove"


@dataclass(frozen=True)
class PortEvent:
    """A board appeared on or left a physical USB port.

    `port` is the usb_device sys_name (`1-1.3`): the only stable name a board has. ROM, flashloader
    and the board after reset are the same board because they appear on the same port; the device
    node (`/dev/hidraw7`, or a socket path under simulation) changes at every re-enumeration.
    """

    action: str
    port: str
    vid: int
    pid: int
    serial: str | None
    devnode: str | None

    @property
    def ids(self) -> str:
        return f"{self.vid:04x}:{self.pid:04x}"
