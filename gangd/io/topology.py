"""Which USB host controller each bus belongs to, read from sysfs.

A root hub's usb_device is a child of its host controller's device (drivers/usb/core/usb.c,
usb_alloc_dev(): a root hub gets `dev->dev.parent = bus->controller`), so
`/sys/bus/usb/devices/usbN` resolves to `<controller>/usbN`: an xHCI's PCI function
(`/sys/devices/pci0000:00/0000:00:14.0/usb1` and `.../usb2`, its USB 2 and USB 3 root hubs) or a
platform device on a SoC. Two buses under one device are one controller: one `address0_mutex`, one
enumeration queue (gangd/core/bus.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gangd.core.bus import HostControllers, usb_bus

SYS = "/sys"


def host_controllers(ports: Iterable[str], sys_root: str = SYS) -> HostControllers:
    """The host controller of each bus the `ports` are on; a bus sysfs does not show (not plugged
    yet, no sysfs) stays a controller of its own."""
    by_bus: dict[str, str] = {}
    for bus in sorted({usb_bus(path) for path in ports}):
        try:
            root_hub = Path(sys_root, "bus", "usb", "devices", f"usb{bus}").resolve(strict=True)
        except OSError:
            continue
        if root_hub.parent.name != "devices":  # a root hub at the top of the tree names no controller
            by_bus[bus] = root_hub.parent.name
    return HostControllers(by_bus)
