"""Power-cycling a hub port, the last resort before asking the operator to replug a board.

On Linux each hub port has a `disable` attribute (since 4.20): writing 1 cuts the port's power
where the hub supports per-port switching, 0 brings it back and the board enumerates afresh.
`/sys/bus/usb/devices/<hub>/<hub>:1.0/<hub>-port<N>/disable`, with root hubs named `usbB`.
"""

from __future__ import annotations

from pathlib import Path

import trio


def disable_attribute(port: str, sysfs: Path = Path("/sys")) -> Path:
    """`1-1.3` → .../1-1/1-1:1.0/1-1-port3/disable; `1-4` → .../usb1/1-0:1.0/usb1-port4/disable."""
    if "." in port:
        hub, number = port.rsplit(".", 1)
        interface = f"{hub}:1.0"
        port_dir = f"{hub}-port{number}"
    else:
        bus, number = port.split("-", 1)
        hub = f"usb{bus}"
        interface = f"{bus}-0:1.0"
        port_dir = f"{hub}-port{number}"
    return sysfs / "bus" / "usb" / "devices" / hub / interface / port_dir / "disable"


class SysfsPortPower:
    """Hardware boundary: writes the kernel's attribute; tested against a sysfs tree in a temporary
    directory, not against a real hub (whether a hub really switches power is the hub's business)."""

    def __init__(self, sysfs: Path = Path("/sys"), off_s: float = 1.0) -> None:
        self.sysfs = sysfs
        self.off_s = off_s

    def available(self, port: str) -> bool:
        path = disable_attribute(port, self.sysfs)
        try:
            if not path.is_file():
                return False
            path.open("r+b").close()  # writable by us: the switch is ours to use
            return True
        except OSError:
            return False

    async def power_cycle(self, port: str) -> None:
        path = trio.Path(disable_attribute(port, self.sysfs))
        await path.write_text("1")
        await trio.sleep(self.off_s)
        await path.write_text("0")
